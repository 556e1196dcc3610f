package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// run executes the command line in-process and returns stdout, stderr and
// the exit code main would use.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(streams{Out: &out, ErrOut: &errb})
	root.SetArgs(args)
	err := execute(context.Background(), root)
	if err != nil {
		errb.WriteString(errorLine(err) + "\n")
	}
	return out.String(), errb.String(), exitCode(err)
}

// copyModel copies the tiny llama fixture into a temp dir for mutation.
func copyModel(t *testing.T) string {
	t.Helper()
	src := testenv.GoldenModel(t, "llama-gqa-untied")
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
	return dst
}

// rewriteHeader replaces the JSON header of dir/model.safetensors with the
// result of edit, keeping the data section.
func rewriteHeader(t *testing.T, dir string, edit func(h map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	b, _ := os.ReadFile(p)
	n := binary.LittleEndian.Uint64(b)
	var h map[string]any
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	nh, _ := json.Marshal(h)
	var out []byte
	out = binary.LittleEndian.AppendUint64(out, uint64(len(nh)))
	out = append(out, nh...)
	out = append(out, b[8+n:]...)
	os.WriteFile(p, out, 0o644)
}

func entry(h map[string]any, name string) map[string]any { return h[name].(map[string]any) }

// TestCompressBadInputs checks that each malformed input yields one clear
// error line naming the problem, exit code 2 (1 for I/O failures), and no
// output file.
func TestCompressBadInputs(t *testing.T) {
	const q = "model.layers.1.self_attn.q_proj.weight"
	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string) string // returns output dir override or ""
		want   string
		code   int
	}{
		{"truncated file", func(t *testing.T, d string) string {
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
			return ""
		}, "past the end of the data", 2},
		{"absurd header length", func(t *testing.T, d string) string {
			p := filepath.Join(d, "model.safetensors")
			b, _ := os.ReadFile(p)
			binary.LittleEndian.PutUint64(b, 1<<40)
			os.WriteFile(p, b, 0o644)
			return ""
		}, "header length", 2},
		{"offsets past EOF", func(t *testing.T, d string) string {
			rewriteHeader(t, d, func(h map[string]any) {
				e := entry(h, q)
				off := e["data_offsets"].([]any)
				e["data_offsets"] = []any{off[0].(float64) + 1e9, off[1].(float64) + 1e9}
			})
			return ""
		}, q, 2},
		{"overlapping tensors", func(t *testing.T, d string) string {
			rewriteHeader(t, d, func(h map[string]any) {
				e := entry(h, q)
				off := e["data_offsets"].([]any)
				e["data_offsets"] = []any{off[0].(float64) + 4, off[1].(float64) + 4}
			})
			return ""
		}, "overlap", 2},
		{"dtype shape mismatch", func(t *testing.T, d string) string {
			rewriteHeader(t, d, func(h map[string]any) { entry(h, q)["dtype"] = "F16" })
			return ""
		}, q, 2},
		{"layer missing a tensor", func(t *testing.T, d string) string {
			rewriteHeader(t, d, func(h map[string]any) {
				// Rename rather than delete, so the data section stays valid.
				h["model.layers.1.self_attn.q_projX.weight"] = h[q]
				delete(h, q)
			})
			return ""
		}, "layer 1 is missing tensor", 2},
		{"NaN weights", func(t *testing.T, d string) string { poke(t, d, q, float32(math.NaN())); return "" }, "non-finite", 2},
		{"Inf weights", func(t *testing.T, d string) string { poke(t, d, q, float32(math.Inf(1))); return "" }, "non-finite", 2},
		{"index outside model dir", func(t *testing.T, d string) string {
			idx := `{"metadata":{},"weight_map":{"` + q + `":"../evil.safetensors"}}`
			os.WriteFile(filepath.Join(d, formats.IndexFile), []byte(idx), 0o644)
			return ""
		}, "model directory", 2},
		{"unwritable output", func(t *testing.T, d string) string {
			ro := filepath.Join(t.TempDir(), "ro")
			os.Mkdir(ro, 0o555)
			if os.Getuid() == 0 {
				// root ignores permissions: use a path under a regular file.
				f := filepath.Join(t.TempDir(), "file")
				os.WriteFile(f, nil, 0o644)
				return filepath.Join(f, "out")
			}
			return filepath.Join(ro, "out")
		}, "cannot create the directory", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyModel(t)
			out := filepath.Join(t.TempDir(), "out")
			if o := tc.mutate(t, dir); o != "" {
				out = o
			}
			stdout, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "2", "-r", "4", "-q")
			if code != tc.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
				t.Errorf("stderr has %d lines, want 1: %q", lines, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not mention %q", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("output left behind: %v", names)
			}
		})
	}
}

// poke overwrites element 3 of the named F32 tensor.
func poke(t *testing.T, dir, name string, v float32) {
	t.Helper()
	p := filepath.Join(dir, "model.safetensors")
	f, err := formats.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Info(name)
	f.Close()
	b, _ := os.ReadFile(p)
	binary.LittleEndian.PutUint32(b[ti.Offset+12:], math.Float32bits(v))
	os.WriteFile(p, b, 0o644)
}

// TestInspectReportsCounts checks compress → inspect --json on bytellama.
func TestInspectReportsCounts(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	out := t.TempDir()
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "8", "-r", "32", "--base", "mean", "-q", "--distill-steps", "0", "--init", "plain", "--refit=false"); code != 0 {
		t.Fatalf("compress failed: %s", stderr)
	}
	stdout, stderr, code := run(t, "inspect", out, "--json")
	if code != 0 {
		t.Fatalf("inspect failed: %s", stderr)
	}
	var s struct {
		ParamsStored   int64 `json:"params_stored"`
		ParamsOriginal int64 `json:"params_original"`
		BytesStored    int64 `json:"bytes_stored"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, stdout)
	}
	if s.ParamsStored != 841_088 || s.ParamsOriginal != 1_517_696 || s.BytesStored != 4*841_088 {
		t.Errorf("inspect reports %+v", s)
	}
}

// TestUsageErrors checks exit code 2 for bad flags.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"compress", "--model", "x"},
		{"compress", "--model", "x", "--out", "y", "--rank", "4", "--energy", "0.5"},
		{"compress", "--model", "x", "--out", "y", "--base", "median"},
		{"compress", "--nonsense"},
		{"compress", "--model", "x", "--out", "y", "--distill-steps", "10", "--tokens", "1000"},
		{"compress", "--model", "x", "--out", "y", "--local-steps", "-1"},
		{"compress", "--model", "x", "--out", "y", "--init", "pca"},
		{"compress", "--model", "x", "--out", "y", "--target-params", "1.5"},
		{"compress", "--model", "x", "--out", "y", "--plan-bases", "median"},
		{"compress", "--model", "x", "--out", "y", "--rank", "4", "--plan-sensitivity"},
		{"distill", "x", "--original", "y", "--min-lr-ratio", "0"},
		{"distill", "x", "--original", "y", "--beta2", "1"},
		{"distill", "x", "--original", "y", "--decay", "step"},
		{"compress", "--model", "x", "--out", "y", "--decay", "Linear"},
		{"distill", "x", "--original", "y", "--steps", "10", "--tokens", "1000"},
		{"inspect"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			if _, _, code := run(t, args...); code != 2 {
				t.Errorf("%v: exit %d, want 2", args, code)
			}
		})
	}
}

// TestJSONStages checks that the --json summaries of compress (with and
// without distillation) and verify list their stages in order, each with a
// wall time and, on Linux, a peak RSS.
func TestJSONStages(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{name: "compress", args: []string{"compress", "--model", dir, "--out", out + "/a", "-k", "2", "-r", "4", "--distill-steps", "0", "--json", "-q"}, want: []string{"svd"}},
		{name: "compress and distill", args: []string{"compress", "--model", dir, "--out", out + "/b", "-k", "2", "-r", "4", "--distill-steps", "2", "--batch", "2", "--json", "-q"},
			want: []string{"read", "svd", "evaluate", "train", "write"}},
		{name: "verify", args: []string{"verify", "--original", dir, "--compressed", out + "/a", "--json", "-q"}, want: []string{"read", "evaluate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var s struct {
				Stages []stageStat `json:"stages"`
			}
			if err := json.Unmarshal([]byte(stdout), &s); err != nil {
				t.Fatalf("%v\n%s", err, stdout)
			}
			var names []string
			for _, st := range s.Stages {
				names = append(names, st.Name)
				if st.Wall <= 0 {
					t.Errorf("stage %s: wall time %v", st.Name, st.Wall)
				}
				if runtime.GOOS == "linux" && st.PeakRSS <= 0 {
					t.Errorf("stage %s: peak RSS %v", st.Name, st.PeakRSS)
				}
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("stages %v, want %v", names, tc.want)
			}
		})
	}
}

// TestUnsupportedArchitectureExit checks that a model of an architecture
// the forward pass lacks is refused as bad input (exit 2, naming it) by the
// commands that must run it, while compress still stores its SVD form.
func TestUnsupportedArchitectureExit(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "mamba")
	copyDir(t, testenv.GoldenModel(t, "llama-gqa-untied"), dir)
	cfg := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.NewReplacer("LlamaForCausalLM", "MambaForCausalLM", `"llama"`, `"mamba"`).Replace(string(b)))
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "out")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-r", "4", "--distill-steps", "0"); code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	for _, args := range [][]string{
		{"verify", "--original", dir, "--compressed", out},
		{"distill", out, "--original", dir, "--steps", "1", "--out", filepath.Join(root, "d")},
	} {
		_, stderr, code := run(t, args...)
		if code != exitUsage || !strings.Contains(stderr, "MambaForCausalLM") {
			t.Errorf("%s: exit %d, want %d naming the architecture: %s", args[0], code, exitUsage, stderr)
		}
	}
}

// TestCPUProfile checks that --cpuprofile leaves a profile pprof can read
// (gzip-compressed protocol buffers) beside a command that succeeds, and
// that an unwritable path is a usage error.
func TestCPUProfile(t *testing.T) {
	dir := testenv.GoldenModel(t, "llama-gqa-untied")
	tmp := t.TempDir()
	prof := filepath.Join(tmp, "cpu.pprof")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", filepath.Join(tmp, "v"), "-k", "2", "-r", "4", "-q", "--distill-steps", "0", "--cpuprofile", prof); code != 0 {
		t.Fatalf("compress --cpuprofile: exit %d: %s", code, stderr)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile of %d bytes does not start with the gzip magic", len(b))
	}
	if _, _, code := run(t, "inspect", filepath.Join(tmp, "v"), "--cpuprofile", filepath.Join(tmp, "missing", "cpu.pprof")); code != 2 {
		t.Errorf("unwritable --cpuprofile: exit %d, want 2", code)
	}
}
