package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadAndDraw(t *testing.T) {
	csv := "series,label,bits_per_weight,kl\nRTN,int4,4.54,0.0358\nRTN,int8,8.14,0.0002\nQAT,int4,4.54,0.0268\n"
	pts, err := readPoints(strings.NewReader(csv))
	if err != nil || len(pts) != 3 || pts[1].bits != 8.14 || pts[2].series != "QAT" {
		t.Fatalf("points %+v, %v", pts, err)
	}
	out := filepath.Join(t.TempDir(), "kl.png")
	if err := draw(pts, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("not a PNG (%v)", err)
	}
	for _, bad := range []string{"series,label,bits_per_weight,kl\n", "h\nRTN,int4,x,0.1\n", "h\nRTN,int4,4,0\n", "h\nRTN,4,0.1\n"} {
		if _, err := readPoints(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
