package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestCompressHelpShowsTheRecipe checks that --help shows the defaults
// that run: the default recipe's.
func TestCompressHelpShowsTheRecipe(t *testing.T) {
	stdout, _, code := run(t, "compress", "--help")
	if code != 0 {
		t.Fatalf("compress --help: exit %d", code)
	}
	for _, want := range []string{
		`--target-params float`, `(default 0.55)`,
		`--init string`, `(default "whitened")`,
		`--refit `, `--plan-sensitivity `, `(default true)`,
		`--train string`, `(default "all")`,
		`--augment int`, `(default 1024)`,
		`--target-bits float`, `--dtype string`, `(default "f32")`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("compress --help lacks %q", want)
		}
	}
}

// TestRecipeFlagsCompose checks that each recipe flag changes only what it
// names: the budget, the whitened initialisation, the refit and the
// distillation of every tensor on the data plus continuations stay, unless
// a flag names them.
func TestRecipeFlagsCompose(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	root := t.TempDir()
	data := filepath.Join(root, "data.safetensors")
	writeInts(t, data, "tokens", []int{4, 16}, func(i int) int32 { return int32(i * 7 % 96) })
	common := []string{"--model", dir, "--data", data, "--calib-samples", "4", "--distill-steps", "2", "--batch", "2", "--augment", "4", "-q"}
	for _, tc := range []struct {
		name  string
		flags []string
		// budget is the stored fraction the file keeps below (0: no
		// budget); bits the bits per weight.
		budget, bits float64
		k            int
		base         vlora.BaseMode
		rank         int
		quantized    bool
	}{
		{name: "target-params", flags: []string{"--target-params", "0.5"}, budget: 0.5},
		{name: "dtype int4", flags: []string{"--dtype", "int4"}, budget: defaultTargetParams, quantized: true},
		{name: "compound size", flags: []string{"-k", "4"}, budget: defaultTargetParams, k: 4},
		{name: "base mean", flags: []string{"--base", "mean"}, budget: defaultTargetParams, base: vlora.BaseMean},
		{name: "target-bits", flags: []string{"--target-bits", "3.5"}, bits: 3.5, base: vlora.BaseZero, quantized: true},
		{name: "rank", flags: []string{"-r", "3"}, base: vlora.BaseFirst, rank: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			_, stderr, code := run(t, append(append([]string{"compress", "--out", out}, common...), tc.flags...)...)
			if code != 0 {
				t.Fatalf("compress %v: exit %d: %s", tc.flags, code, stderr)
			}
			m, f, err := vlora.ReadManifest(out)
			if err != nil {
				t.Fatal(err)
			}
			f.Close()
			// The refit runs on the whitened initialisation's calibration
			// data in every case.
			if !strings.Contains(stderr, "refit:") {
				t.Errorf("no refit: %s", stderr)
			}
			if (tc.budget != 0 || tc.bits != 0) != strings.Contains(stderr, "budget:") {
				t.Errorf("budget reported %v, want %v: %s", !strings.Contains(stderr, "budget:"), tc.budget != 0 || tc.bits != 0, stderr)
			}
			if frac := float64(m.Counts.ParamsStored) / float64(m.Counts.ParamsOriginal); tc.budget != 0 && frac > tc.budget {
				t.Errorf("stored fraction %.4f, want at most %v", frac, tc.budget)
			}
			if tc.bits != 0 {
				if b, _ := m.BitsPerOriginalWeight(); b > tc.bits {
					t.Errorf("%.4f bits per weight, want at most %v", b, tc.bits)
				}
			}
			if tc.k != 0 && m.CompoundSize != tc.k {
				t.Errorf("compound size %d, want %d", m.CompoundSize, tc.k)
			}
			if tc.base != "" && m.BaseMode != tc.base {
				t.Errorf("base %s, want %s", m.BaseMode, tc.base)
			}
			if tc.rank != 0 && m.SVD.Rank != tc.rank {
				t.Errorf("rank %d, want %d", m.SVD.Rank, tc.rank)
			}
			if q := m.Quant != nil && m.Quant.Active(); q != tc.quantized {
				t.Errorf("quantized %v, want %v", q, tc.quantized)
			}
			if m.Distill == nil || m.Distill.Train != "all" || !strings.Contains(m.Distill.Data, "4 continuations") {
				t.Errorf("distill record %+v, want every tensor trained on the data and 4 continuations", m.Distill)
			}
		})
	}
	// A budget excludes a fixed rank; --plan-sensitivity needs a budget.
	for _, args := range [][]string{
		{"--target-params", "0.5", "-r", "3"},
		{"--target-bits", "3", "--energy", "0.9"},
		{"--target-bits", "3", "--target-params", "0.5"},
		{"--target-bits", "3", "--dtype", "int4"},
		{"-r", "3", "--plan-sensitivity"},
		{"--target-bits", "0.5"},
		{"--target-bits", "40"},
		{"--target-bits", "3", "--align"},
		{"--bits-lowrank"},
		{"--rounding", "rtn"},
		{"--target-bits", "3", "--rounding", "nearest"},
	} {
		_, stderr, code := run(t, append([]string{"compress", "--model", dir, "--out", filepath.Join(root, "x")}, args...)...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("compress %v: exit %d, %q; want exit 2 and one line", args, code, stderr)
		}
	}
}
