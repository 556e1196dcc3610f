package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestReadAndDraw reads a small CSV and checks the points and the PNG.
func TestReadAndDraw(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "p.csv")
	os.WriteFile(in, []byte("recipe,stored_fraction,kl,nll\na,0.5,0.2,1.05\na,0.55,0.17,1.02\n\"b, c\",0.55,0.18,1.03\n"), 0o644)
	pts, err := read(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []point{{"a", 0.5, 0.2, 1.05}, {"a", 0.55, 0.17, 1.02}, {"b, c", 0.55, 0.18, 1.03}}
	if len(pts) != len(want) {
		t.Fatalf("%d points, want %d", len(pts), len(want))
	}
	for i := range want {
		if pts[i] != want[i] {
			t.Errorf("point %d = %+v, want %+v", i, pts[i], want[i])
		}
	}
	out := filepath.Join(dir, "p.png")
	if err := drawPanels(pts, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no PNG written: %v", err)
	}
	os.WriteFile(in, []byte("recipe,stored_fraction,kl,nll\na,x,0.2,1\n"), 0o644)
	if _, err := read(in); err == nil {
		t.Error("no error for a malformed number")
	}
}

// TestPareto reads a bits CSV with two models and draws their panels.
func TestPareto(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "b.csv")
	os.WriteFile(in, []byte("model,method,bits,kl\nm1,rtn,4.5,0.04\nm1,bits,4.5,0.02\nm1,bits,3.5,0.05\nm2,rtn,4.5,0.2\n"), 0o644)
	models, by, err := readPareto(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || len(by["m1"]) != 3 || by["m1"][2] != (point{recipe: "bits", frac: 3.5, kl: 0.05}) {
		t.Fatalf("models %v, points %+v", models, by)
	}
	out := filepath.Join(dir, "b.png")
	if err := drawPareto(models, by, out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("no PNG written: %v", err)
	}
	os.WriteFile(in, []byte("model,method,bits,kl\nm,rtn,4,0\n"), 0o644)
	if _, _, err := readPareto(in); err == nil {
		t.Error("no error for a zero KL on a log scale")
	}
}
