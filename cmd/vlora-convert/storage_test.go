package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestQuantizedStorage compresses the tiny llama to int4 storage (round to
// nearest, no distillation), then checks inspect's accounting, that the
// file loads everywhere (verify with its baseline, expand), and that
// distilling it with mixed precision trains for and writes that plan.
func TestQuantizedStorage(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "-r", "3", "--dtype", "int4", "--group-size", "16", "-q", "--distill-steps", "0"); code != 0 {
		t.Fatalf("compress failed: %s", stderr)
	}
	type inspected struct {
		Quant         *vlora.QuantPlan      `json:"quant"`
		Storage       []vlora.FamilyStorage `json:"storage"`
		BitsPerWeight float64               `json:"bits_per_weight"`
	}
	inspect := func() inspected {
		stdout, stderr, code := run(t, "inspect", out, "--json")
		if code != 0 {
			t.Fatalf("inspect failed: %s", stderr)
		}
		var s inspected
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := inspect()
	if s.Quant == nil || s.Quant.Bases.String() != "int4/g16/full" || len(s.Storage) != 4 {
		t.Fatalf("inspect: %+v", s)
	}
	// int4 in groups of 16 costs 4 + 16/16 = 5 bits per value.
	for _, f := range s.Storage[:3] {
		if f.BitsPerWeight() != 5 {
			t.Errorf("%s: %.3f bits per value, want 5", f.Family, f.BitsPerWeight())
		}
	}
	stdout, stderr, code := run(t, "verify", "--original", dir, "--compressed", out, "--samples", "2", "--seq-len", "8", "-q")
	if code != 0 || !strings.Contains(stdout, "same-size baseline") || !strings.Contains(stdout, "bits per weight") {
		t.Fatalf("verify: exit %d, %s\n%s", code, stderr, stdout)
	}
	if _, stderr, code := run(t, "expand", out, "--out", filepath.Join(t.TempDir(), "dense")); code != 0 {
		t.Fatalf("expand: %s", stderr)
	}
	if _, stderr, code := run(t, "distill", out, "--original", dir, "--steps", "3", "--batch", "2", "-q",
		"--dtype", "int8", "--quant", "factors=int4,passthrough=none"); code != 0 {
		t.Fatalf("distill: %s", stderr)
	}
	s = inspect()
	if p := s.Quant; p == nil || p.String() != "bases=int8/row/full,factors=int4/g32/full,passthrough=none" {
		t.Errorf("plan after distill: %v", p)
	}
}

// TestStorageFlagErrors checks that bad storage flags are usage errors.
func TestStorageFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--dtype", "int9"},
		{"--dtype", "int4/g32", "--group-size", "64"},
		{"--dtype", "int4", "--group-size", "-1"},
		{"--quant", "heads=int4"},
		{"--quant", "bases"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			if _, _, code := run(t, append([]string{"compress", "--model", "x", "--out", "y"}, args...)...); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		})
	}
}
