package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// The hostile corpus: broken files, configs, data and flags for every
// command. Each case runs the command line in-process on its own copies of
// the fixtures and asserts the exit code, one error line under 300
// characters naming the right thing, and, for a rejected input, that the
// case's directory (inputs and intended outputs alike) is byte-identical
// afterwards: nothing written, nothing left behind, no input touched.

// hostileFixture holds the shared, never-modified originals: the small
// Llama checkpoint and a VLoRA file compressed from it.
type hostileFixture struct {
	model, vlora string
}

// newHostileFixture compresses the Llama fixture once (K=2, rank 4, no
// distillation).
func newHostileFixture(t *testing.T) *hostileFixture {
	t.Helper()
	fx := &hostileFixture{model: copyModel(t)}
	fx.vlora = filepath.Join(t.TempDir(), "v")
	if _, stderr, code := run(t, "compress", "--model", fx.model, "--out", fx.vlora, "-k", "2", "-r", "4", "--distill-steps", "0", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	return fx
}

// hostileDirs are one case's copies: M (dense model directory), V (VLoRA
// directory), D (a token data file), In (an infer input file), and Root,
// the directory holding them and any output the case names.
type hostileDirs struct {
	Root, M, V, VFile, D, In string
}

func (fx *hostileFixture) copies(t *testing.T) *hostileDirs {
	t.Helper()
	root := t.TempDir()
	c := &hostileDirs{Root: root, M: filepath.Join(root, "M"), V: filepath.Join(root, "V"),
		D: filepath.Join(root, "data.safetensors"), In: filepath.Join(root, "in.safetensors")}
	copyDir(t, fx.model, c.M)
	copyDir(t, fx.vlora, c.V)
	c.VFile = filepath.Join(c.V, vlora.FileName)
	writeInts(t, c.D, "tokens", []int{4, 16}, func(i int) int32 { return int32(i % 96) })
	writeInts(t, c.In, "input_ids", []int{2, 8}, func(i int) int32 { return int32(i % 96) })
	return c
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeInts writes an I32 tensor name of shape with values v(i).
func writeInts(t *testing.T, path, name string, shape []int, v func(i int) int32) {
	t.Helper()
	data := make([]int32, vlora.NumElements(shape))
	for i := range data {
		data[i] = v(i)
	}
	w, err := formats.Create(path, nil, []formats.TensorSpec{{Name: name, DType: formats.I32, Shape: shape}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteInt32(name, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// writeFloats writes an F32 tensor name of shape with values v(i).
func writeFloats(t *testing.T, path, name string, shape []int, v func(i int) float32) {
	t.Helper()
	data := make([]float32, vlora.NumElements(shape))
	for i := range data {
		data[i] = v(i)
	}
	w, err := formats.Create(path, nil, []formats.TensorSpec{{Name: name, DType: formats.F32, Shape: shape}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFloat32(name, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// editHeader replaces the JSON header of the safetensors file at path with
// the result of edit, keeping the data section.
func editHeader(t *testing.T, path string, edit func(h map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(b)
	var h map[string]any
	if err := json.Unmarshal(b[8:8+n], &h); err != nil {
		t.Fatal(err)
	}
	edit(h)
	nh, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(nh)))
	out = append(append(out, nh...), b[8+n:]...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editManifest edits the manifest of the VLoRA file at path as JSON.
func editManifest(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	editHeader(t, path, func(h map[string]any) {
		md := h["__metadata__"].(map[string]any)
		var m map[string]any
		if err := json.Unmarshal([]byte(md[vlora.ManifestKey].(string)), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		md[vlora.ManifestKey] = string(b)
	})
}

// editManifestConfig sets key to v in the config.json the manifest records.
func editManifestConfig(t *testing.T, path, key string, v any) {
	t.Helper()
	editManifest(t, path, func(m map[string]any) {
		m["config"].(map[string]any)[key] = v
	})
}

// editConfig sets key to v in dir/config.json.
func editConfig(t *testing.T, dir, key string, v any) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c[key] = v
	if b, err = json.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pokeTensor overwrites element 0 of the F32 tensor name in the
// safetensors file at path.
func pokeTensor(t *testing.T, path, name string, v float32) {
	t.Helper()
	f, err := formats.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, ok := f.Info(name)
	f.Close()
	if !ok || ti.DType != formats.F32 {
		t.Fatalf("%s: no F32 tensor %q", path, name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[ti.Offset:], math.Float32bits(v))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeManyTensors writes a safetensors file whose header declares n
// one-float layer tensors, all over the same four bytes.
func writeManyTensors(t *testing.T, path string, n int) {
	t.Helper()
	var h strings.Builder
	h.WriteString("{")
	for i := range n {
		if i > 0 {
			h.WriteString(",")
		}
		h.WriteString(`"model.layers.` + strconv.Itoa(i) + `.w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`)
	}
	h.WriteString("}")
	b := binary.LittleEndian.AppendUint64(nil, uint64(h.Len()))
	b = append(append(b, h.String()...), 0, 0, 0, 0)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every file and directory under root to its SHA-256 (""
// for directories).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[p] = ""
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			out[p] = "link to " + target
			return err
		}
		if !d.Type().IsRegular() {
			out[p] = d.Type().String() // a pipe is never read
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[p] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// hostileCase is one entry of the corpus: setup mutates the case's copies
// and returns the command line; a rejected case (code != 0) must leave
// Root byte-identical, and its error line must contain every want.
type hostileCase struct {
	name  string
	setup func(t *testing.T, c *hostileDirs) []string
	code  int
	want  []string
}

// runHostile runs the cases of one command as parallel subtests.
func runHostile(t *testing.T, fx *hostileFixture, cases []hostileCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fx.copies(t)
			args := tc.setup(t, c)
			before := snapshot(t, c.Root)
			start := time.Now()
			_, stderr, code := run(t, args...)
			elapsed := time.Since(start)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr %q", code, tc.code, stderr)
			}
			if tc.code == 0 {
				return
			}
			line := strings.TrimSuffix(stderr, "\n")
			if strings.Contains(line, "\n") || len(line) >= 300 || line == "" {
				t.Errorf("want one error line under 300 characters, got %d bytes: %q", len(stderr), stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not name %q", line, w)
				}
			}
			after := snapshot(t, c.Root)
			for p, h := range after {
				if b, ok := before[p]; !ok {
					t.Errorf("left behind: %s", p)
				} else if b != h {
					t.Errorf("modified: %s", p)
				}
			}
			for p := range before {
				if _, ok := after[p]; !ok {
					t.Errorf("removed: %s", p)
				}
			}
			if elapsed > 20*time.Second {
				t.Errorf("took %v to reject", elapsed)
			}
		})
	}
}

// args is a shorthand for a fixed command line.
func args(a ...string) func(*testing.T, *hostileDirs) []string {
	return func(*testing.T, *hostileDirs) []string { return a }
}

const (
	qProj  = "model.layers.1.self_attn.q_proj.weight"
	loraA  = "vlora.layers.1.self_attn.q_proj.weight.lora_A"
	loraB  = "vlora.layers.1.self_attn.q_proj.weight.lora_B"
	base0  = "vlora.compounds.0.mlp.up_proj.weight.base"
	delta1 = "vlora.layers.1.input_layernorm.weight.delta"
	embed  = "model.embed_tokens.weight"
)

func TestHostile(t *testing.T) {
	fx := newHostileFixture(t)
	t.Run("compress", func(t *testing.T) { runHostile(t, fx, compressCorpus()) })
	t.Run("inspect", func(t *testing.T) { runHostile(t, fx, inspectCorpus()) })
	t.Run("expand", func(t *testing.T) { runHostile(t, fx, expandCorpus()) })
	t.Run("infer", func(t *testing.T) { runHostile(t, fx, inferCorpus()) })
	t.Run("verify", func(t *testing.T) { runHostile(t, fx, verifyCorpus()) })
	t.Run("distill", func(t *testing.T) { runHostile(t, fx, distillCorpus()) })
}

// compressArgs is a compress command line on c with extra flags.
func compressArgs(c *hostileDirs, extra ...string) []string {
	return append([]string{"compress", "--model", c.M, "--out", filepath.Join(c.Root, "out"), "-k", "2", "-r", "4", "--distill-steps", "0"}, extra...)
}

func flagCase(name string, build func(c *hostileDirs, extra ...string) []string, want string, extra ...string) hostileCase {
	return hostileCase{name: name, code: 2, want: []string{want}, setup: func(_ *testing.T, c *hostileDirs) []string {
		return build(c, extra...)
	}}
}

func compressCorpus() []hostileCase {
	dataFlags := func(c *hostileDirs, extra ...string) []string {
		return append(compressArgs(c, "--distill-steps", "2", "--data", c.D), extra...)
	}
	return []hostileCase{
		flagCase("rank 0", compressArgs, "--rank", "--rank", "0"),
		flagCase("energy 0", compressArgs, "--energy", "--energy", "0", "-r", "0"),
		flagCase("energy NaN", compressArgs, "--energy", "--energy", "NaN"),
		flagCase("energy above 1", compressArgs, "--energy", "--energy", "1.5"),
		flagCase("compound size 0", compressArgs, "--compound-size", "-k", "0"),
		flagCase("oversample near MaxInt64", compressArgs, "--oversample", "--svd", "randomized", "--oversample", "9223372036854775000"),
		flagCase("power iterations huge", compressArgs, "--power-iters", "--power-iters", "1000000"),
		flagCase("negative workers", compressArgs, "--workers", "--workers", "-1"),
		flagCase("negative distill steps", compressArgs, "--distill-steps", "--distill-steps", "-5"),
		flagCase("dtype int8", compressArgs, "--dtype", "--dtype", "i8"),
		flagCase("base median", compressArgs, "median", "--base", "median"),
		flagCase("negative seq-len", dataFlags, "--seq-len", "--seq-len", "-1"),
		flagCase("lr NaN", dataFlags, "--lr", "--lr", "NaN"),
		flagCase("lr negative", dataFlags, "--lr", "--lr", "-1"),
		flagCase("batch 0", dataFlags, "--batch", "--batch", "0"),
		flagCase("temperature 0", dataFlags, "--temperature", "--temperature", "0"),
		flagCase("clip Inf", dataFlags, "--clip", "--clip", "Inf"),
		flagCase("checkpoint-every negative", dataFlags, "--checkpoint-every", "--checkpoint-every", "-1"),
		{"float data file", func(t *testing.T, c *hostileDirs) []string {
			writeFloats(t, c.D, "tokens", []int{2, 8}, func(i int) float32 { return 0.5 })
			return compressArgs(c, "--distill-steps", "2", "--data", c.D)
		}, 2, []string{"data.safetensors", "tokens"}},
		{"data token out of vocabulary", func(t *testing.T, c *hostileDirs) []string {
			writeInts(t, c.D, "tokens", []int{2, 8}, func(i int) int32 { return 1000 })
			return compressArgs(c, "--distill-steps", "2", "--data", c.D)
		}, 2, []string{"data.safetensors", "1000"}},
		{"bad eval data", func(t *testing.T, c *hostileDirs) []string {
			bad := filepath.Join(c.Root, "eval.safetensors")
			writeFloats(t, bad, "x", []int{2}, func(int) float32 { return 1 })
			return compressArgs(c, "--distill-steps", "2", "--data", c.D, "--eval-data", bad)
		}, 2, []string{"eval.safetensors"}},
		{"missing data file", func(t *testing.T, c *hostileDirs) []string {
			return compressArgs(c, "--distill-steps", "2", "--data", filepath.Join(c.Root, "nope.safetensors"))
		}, 2, []string{"nope.safetensors"}},
		{"output is the model directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"compress", "--model", c.M, "--out", c.M, "--distill-steps", "0"}
		}, 2, []string{"--out", "M"}},
		{"output inside the model directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"compress", "--model", c.M, "--out", filepath.Join(c.M, "sub"), "--distill-steps", "0"}
		}, 2, []string{"--out"}},
		{"output through a symlink to the model", func(t *testing.T, c *hostileDirs) []string {
			link := filepath.Join(c.Root, "link")
			if err := os.Symlink(c.M, link); err != nil {
				t.Skip(err)
			}
			return []string{"compress", "--model", c.M, "--out", link, "--distill-steps", "0"}
		}, 2, []string{"--out"}},
		{"config declares fewer layers", func(t *testing.T, c *hostileDirs) []string {
			editConfig(t, c.M, "num_hidden_layers", 3)
			return compressArgs(c)
		}, 2, []string{"num_hidden_layers"}},
		{"header declaring too many layers", func(t *testing.T, c *hostileDirs) []string {
			writeManyTensors(t, filepath.Join(c.M, "model.safetensors"), formats.MaxTensors+1)
			return compressArgs(c)
		}, 2, []string{"model.safetensors", "tensors"}},
		{"config declares a billion layers", func(t *testing.T, c *hostileDirs) []string {
			editConfig(t, c.M, "num_hidden_layers", 1e9)
			return compressArgs(c)
		}, 2, []string{"num_hidden_layers"}},
		{"NaN weight", func(t *testing.T, c *hostileDirs) []string {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), qProj, float32(math.NaN()))
			return compressArgs(c)
		}, 2, []string{qProj, "non-finite"}},
		{"f16 overflow", func(t *testing.T, c *hostileDirs) []string {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), "model.layers.0.self_attn.q_proj.weight", 1e6)
			return compressArgs(c, "--dtype", "f16")
		}, 2, []string{"F16", "BF16"}},
		{"resume into another model's output", func(t *testing.T, c *hostileDirs) []string {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), qProj, 0.5)
			// An interrupted run's staging directory: the SVD stage's file
			// and a checkpoint.
			copyDir(t, c.V, filepath.Join(c.V, outdir.StagingName))
			if err := os.WriteFile(filepath.Join(c.V, outdir.StagingName, checkpointName), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"compress", "--model", c.M, "--out", c.V, "--resume", "--distill-steps", "2", "--data", c.D}
		}, 2, []string{"SHA-256", "--skip-source-check"}},
	}
}

func inspectCorpus() []hostileCase {
	vf := func(edit func(t *testing.T, c *hostileDirs)) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			edit(t, c)
			return []string{"inspect", c.V}
		}
	}
	return []hostileCase{
		{"manifest names a tensor not in the file", vf(func(t *testing.T, c *hostileDirs) {
			editManifest(t, c.VFile, func(m map[string]any) {
				m["passthrough"] = append(m["passthrough"].([]any), map[string]any{"name": "ghost.weight", "shape": []int{3}, "dtype": "F32"})
			})
		}), 2, []string{"ghost.weight", "missing"}},
		{"file holds a tensor the manifest does not name", vf(func(t *testing.T, c *hostileDirs) {
			editHeader(t, c.VFile, func(h map[string]any) { h["extra"] = h[embed]; delete(h, embed) })
		}), 2, []string{"extra"}},
		{"lora_A shape differs from its rank", vf(func(t *testing.T, c *hostileDirs) {
			editManifest(t, c.VFile, func(m map[string]any) {
				for _, inc := range m["increments"].([]any) {
					if im := inc.(map[string]any); im["kind"] == "lowrank" {
						im["rank"] = 3
						return
					}
				}
			})
		}), 2, []string{"lora", "manifest implies"}},
		{"manifest is not JSON", vf(func(t *testing.T, c *hostileDirs) {
			editHeader(t, c.VFile, func(h map[string]any) { h["__metadata__"].(map[string]any)[vlora.ManifestKey] = "{not json" })
		}), 2, []string{"manifest"}},
		{"metadata value is an object", vf(func(t *testing.T, c *hostileDirs) {
			big := map[string]any{}
			for i := range 500 {
				big[strings.Repeat("k", 10)+string(rune('a'+i%26))+strings.Repeat("x", i%7)] = map[string]any{"v": i}
			}
			editHeader(t, c.VFile, func(h map[string]any) { h["__metadata__"].(map[string]any)["extra"] = big })
		}), 2, []string{"__metadata__", "not a string"}},
		{"no manifest", vf(func(t *testing.T, c *hostileDirs) {
			editHeader(t, c.VFile, func(h map[string]any) { delete(h, "__metadata__") })
		}), 2, []string{"not a VLoRA file"}},
		{"truncated file", vf(func(t *testing.T, c *hostileDirs) {
			b, _ := os.ReadFile(c.VFile)
			os.WriteFile(c.VFile, b[:len(b)/2], 0o644)
		}), 2, []string{vlora.FileName}},
		{"absurd header length", vf(func(t *testing.T, c *hostileDirs) {
			b, _ := os.ReadFile(c.VFile)
			binary.LittleEndian.PutUint64(b, 1<<40)
			os.WriteFile(c.VFile, b, 0o644)
		}), 2, []string{"header length"}},
		{"a million layers", vf(func(t *testing.T, c *hostileDirs) {
			editManifest(t, c.VFile, func(m map[string]any) { m["num_layers"] = 1_000_000 })
		}), 2, []string{"num_layers"}},
		{"manifest config disagrees with the layers", vf(func(t *testing.T, c *hostileDirs) {
			editManifestConfig(t, c.VFile, "num_hidden_layers", 2)
		}), 2, []string{"num_hidden_layers"}},
		{"directory without a VLoRA file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"inspect", c.M}
		}, 2, []string{vlora.FileName}},
		{"missing path", func(t *testing.T, c *hostileDirs) []string {
			return []string{"inspect", filepath.Join(c.Root, "nothing")}
		}, 2, []string{"nothing"}},
		{"a FIFO instead of a file", func(t *testing.T, c *hostileDirs) []string {
			p := filepath.Join(c.Root, "pipe.safetensors")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Skip(err)
			}
			return []string{"inspect", p}
		}, 2, []string{"pipe.safetensors", "not a regular file"}},
		{"dense checkpoint file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"inspect", filepath.Join(c.M, "model.safetensors")}
		}, 2, []string{"not a VLoRA file"}},
	}
}

func expandCorpus() []hostileCase {
	exp := func(edit func(t *testing.T, c *hostileDirs)) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			edit(t, c)
			return []string{"expand", c.V, "--out", filepath.Join(c.Root, "out")}
		}
	}
	poke := func(name string, v float32) func(t *testing.T, c *hostileDirs) {
		return func(t *testing.T, c *hostileDirs) { pokeTensor(t, c.VFile, name, v) }
	}
	return []hostileCase{
		{"over the original", func(t *testing.T, c *hostileDirs) []string {
			return []string{"expand", c.V, "--out", c.M}
		}, 2, []string{"--out", "original"}},
		{"beside its input", func(t *testing.T, c *hostileDirs) []string {
			return []string{"expand", c.VFile, "--out", c.V}
		}, 2, []string{"--out"}},
		{"NaN in lora_A", exp(poke(loraA, float32(math.NaN()))), 2, []string{loraA, "non-finite"}},
		{"Inf in lora_B", exp(poke(loraB, float32(math.Inf(1)))), 2, []string{loraB, "non-finite"}},
		{"NaN in a base", exp(poke(base0, float32(math.NaN()))), 2, []string{base0}},
		{"NaN in a delta", exp(poke(delta1, float32(math.NaN()))), 2, []string{delta1}},
		{"Inf in a pass-through tensor", exp(poke(embed, float32(math.Inf(-1)))), 2, []string{embed}},
		{"manifest config with a billion layers", exp(func(t *testing.T, c *hostileDirs) {
			editManifestConfig(t, c.VFile, "num_hidden_layers", 1e9)
		}), 2, []string{"num_hidden_layers"}},
		{"lora_B shape swapped", exp(func(t *testing.T, c *hostileDirs) {
			editHeader(t, c.VFile, func(h map[string]any) {
				e := h[loraB].(map[string]any)
				s := e["shape"].([]any)
				e["shape"] = []any{s[1], s[0]}
			})
		}), 2, []string{loraB}},
		{"output under a regular file", func(t *testing.T, c *hostileDirs) []string {
			f := filepath.Join(c.Root, "file")
			os.WriteFile(f, nil, 0o644)
			return []string{"expand", c.V, "--out", filepath.Join(f, "out")}
		}, 2, []string{"--out", "cannot create the directory"}},
		{"input is a dense checkpoint", func(t *testing.T, c *hostileDirs) []string {
			return []string{"expand", filepath.Join(c.M, "model.safetensors"), "--out", filepath.Join(c.Root, "out")}
		}, 2, []string{"not a VLoRA file"}},
		{"missing input", func(t *testing.T, c *hostileDirs) []string {
			return []string{"expand", filepath.Join(c.Root, "none"), "--out", filepath.Join(c.Root, "out")}
		}, 2, []string{"none"}},
	}
}

func inferCorpus() []hostileCase {
	inf := func(edit func(t *testing.T, c *hostileDirs)) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			edit(t, c)
			return []string{"infer", "--model", c.M, "--input", c.In, "--out", filepath.Join(c.Root, "out.safetensors")}
		}
	}
	cfg := func(key string, v any) func(t *testing.T, c *hostileDirs) {
		return func(t *testing.T, c *hostileDirs) { editConfig(t, c.M, key, v) }
	}
	golden := func(name string, edit func(t *testing.T, dir, in string)) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			dir := filepath.Join(c.Root, name)
			copyDir(t, testenv.GoldenModel(t, name), dir)
			in := filepath.Join(dir, "golden.safetensors")
			edit(t, dir, in)
			return []string{"infer", "--model", dir, "--input", in, "--out", filepath.Join(c.Root, "out.safetensors")}
		}
	}
	return []hostileCase{
		{"token id out of vocabulary", inf(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.In, "input_ids", []int{1, 4}, func(i int) int32 { return 96 + int32(i) })
		}), 2, []string{"token id 96"}},
		{"negative token id", inf(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.In, "input_ids", []int{1, 4}, func(i int) int32 { return -1 })
		}), 2, []string{"token id -1"}},
		{"empty sequence", inf(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.In, "input_ids", []int{1, 0}, func(i int) int32 { return 0 })
		}), 2, []string{"sequence length"}},
		{"float input ids", inf(func(t *testing.T, c *hostileDirs) {
			writeFloats(t, c.In, "input_ids", []int{1, 4}, func(i int) float32 { return 1.5 })
		}), 2, []string{"input_ids"}},
		{"no input tensor", inf(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.In, "ids", []int{1, 4}, func(i int) int32 { return 1 })
		}), 2, []string{"input_ids"}},
		{"input ids of rank 3", inf(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.In, "input_ids", []int{1, 2, 2}, func(i int) int32 { return 1 })
		}), 2, []string{"input_ids"}},
		{"output over the input", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.M, "--input", c.In, "--out", c.In}
		}, 2, []string{"--out"}},
		{"input is a directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.M, "--input", c.V, "--out", filepath.Join(c.Root, "out.safetensors")}
		}, 2, []string{"not a regular file"}},
		{"output inside the model directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.M, "--input", c.In, "--out", filepath.Join(c.M, "model.safetensors")}
		}, 2, []string{"--out"}},
		{"NaN weight in the dense model", inf(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), qProj, float32(math.NaN()))
		}), 2, []string{qProj, "non-finite"}},
		{"NaN weight in the VLoRA model", func(t *testing.T, c *hostileDirs) []string {
			pokeTensor(t, c.VFile, loraA, float32(math.NaN()))
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", filepath.Join(c.Root, "out.safetensors")}
		}, 2, []string{loraA}},
		{"config declares fewer layers", inf(cfg("num_hidden_layers", 3)), 2, []string{"num_hidden_layers"}},
		{"config declares a billion layers", inf(cfg("num_hidden_layers", 1e9)), 2, []string{"num_hidden_layers"}},
		{"header declaring too many layers", inf(func(t *testing.T, c *hostileDirs) {
			writeManyTensors(t, filepath.Join(c.M, "model.safetensors"), formats.MaxTensors+1)
		}), 2, []string{"model.safetensors", "tensors"}},
		{"vocab_size 1e9", inf(cfg("vocab_size", 1e9)), 2, []string{"vocab_size"}},
		{"vocab_size a million", inf(cfg("vocab_size", 1e6)), 2, []string{embed}},
		{"intermediate_size 1e7", inf(cfg("intermediate_size", 1e7)), 2, []string{"mlp"}},
		{"hidden_size disagrees", inf(cfg("hidden_size", 7)), 2, []string{embed}},
		{"rope_theta 0", inf(func(t *testing.T, c *hostileDirs) {
			editConfig(t, c.M, "rope_parameters", map[string]any{"rope_theta": 0, "rope_type": "default"})
		}), 2, []string{"rope_theta"}},
		{"rope_theta negative", inf(cfg("rope_theta", -1)), 2, []string{"rope_theta"}},
		{"rope_theta a string NaN", inf(cfg("rope_theta", "NaN")), 2, []string{"rope_theta", "number"}},
		{"negative norm epsilon", inf(cfg("rms_norm_eps", -1)), 2, []string{"eps"}},
		{"zero attention heads", inf(cfg("num_attention_heads", 0)), 2, []string{"num_attention_heads"}},
		{"fractional layer count", inf(cfg("num_hidden_layers", 3.5)), 2, []string{"num_hidden_layers"}},
		{"config is not an object", inf(func(t *testing.T, c *hostileDirs) {
			os.WriteFile(filepath.Join(c.M, "config.json"), []byte("[1,2]"), 0o644)
		}), 2, []string{"config"}},
		{"no config", inf(func(t *testing.T, c *hostileDirs) {
			os.Remove(filepath.Join(c.M, "config.json"))
		}), 2, []string{"config.json"}},
		{"sequence longer than GPT-2's positions", golden("gpt2", func(t *testing.T, dir, in string) {
			writeInts(t, in, "input_ids", []int{1, 65}, func(i int) int32 { return 1 })
		}), 2, []string{"65", "positions"}},
		{"n_positions 1e9", golden("gpt2", func(t *testing.T, dir, in string) {
			editConfig(t, dir, "n_positions", 1e9)
		}), 2, []string{"n_positions"}},
		{"token type out of range", golden("bert", func(t *testing.T, dir, in string) {
			w, err := formats.Create(in, nil, []formats.TensorSpec{
				{Name: "input_ids", DType: formats.I32, Shape: []int{1, 4}},
				{Name: "token_type_ids", DType: formats.I32, Shape: []int{1, 4}}})
			if err != nil {
				t.Fatal(err)
			}
			w.WriteInt32("input_ids", []int32{1, 2, 3, 4})
			w.WriteInt32("token_type_ids", []int32{0, 1, 5, 0})
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}), 2, []string{"token type 5"}},
		{"wrong pixel count", golden("vit", func(t *testing.T, dir, in string) {
			writeFloats(t, in, "pixel_values", []int{1, 3, 8, 8}, func(int) float32 { return 0.1 })
		}), 2, []string{"pixel"}},
		{"NaN pixel", golden("vit", func(t *testing.T, dir, in string) {
			writeFloats(t, in, "pixel_values", []int{1, 3, 16, 16}, func(i int) float32 { return 0.1 })
			pokeTensor(t, in, "pixel_values", float32(math.NaN()))
		}), 2, []string{"pixel_values", "non-finite"}},
	}
}

func verifyCorpus() []hostileCase {
	ver := func(edit func(t *testing.T, c *hostileDirs), extra ...string) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			if edit != nil {
				edit(t, c)
			}
			a := []string{"verify", "--original", c.M, "--compressed", c.V, "--samples", "2", "--seq-len", "8"}
			for _, e := range extra {
				a = append(a, strings.ReplaceAll(e, "DATA", c.D))
			}
			return a
		}
	}
	return []hostileCase{
		{"arguments swapped", func(t *testing.T, c *hostileDirs) []string {
			return []string{"verify", "--original", c.V, "--compressed", c.M}
		}, 2, []string{"not a VLoRA file"}},
		{"dense checkpoint as compressed", func(t *testing.T, c *hostileDirs) []string {
			return []string{"verify", "--original", c.M, "--compressed", c.M}
		}, 2, []string{"not a VLoRA file"}},
		{"samples 1e9", ver(nil, "--samples", "1000000000"), 2, []string{"--samples"}},
		{"max-kl NaN", ver(nil, "--max-kl", "NaN"), 2, []string{"--max-kl"}},
		{"min-agreement 2", ver(nil, "--min-agreement", "2"), 2, []string{"--min-agreement"}},
		{"batch 0", ver(nil, "--batch", "0"), 2, []string{"--batch"}},
		{"negative seq-len", ver(nil, "--seq-len", "-1"), 2, []string{"--seq-len"}},
		{"generated inputs past the memory budget", ver(nil, "--samples", "1000000", "--seq-len", "60000"), 2, []string{"ask for"}},
		{"labels without data", ver(nil, "--labels", "y"), 2, []string{"--labels"}},
		{"sampling whose key/value cache is past the budget", ver(nil, "--samples", "200000", "--seq-len", "64"), 2, []string{"ask for"}},
		{"NaN in the VLoRA file", ver(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, c.VFile, loraB, float32(math.NaN()))
		}), 2, []string{loraB}},
		{"original of another model", func(t *testing.T, c *hostileDirs) []string {
			dir := filepath.Join(c.Root, "gpt2")
			copyDir(t, testenv.GoldenModel(t, "gpt2"), dir)
			return []string{"verify", "--original", dir, "--compressed", c.V}
		}, 2, []string{"integrity"}},
		{"original with other weights", ver(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), qProj, 0.25)
		}), 2, []string{"SHA-256"}},
		{"data token out of vocabulary", ver(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.D, "tokens", []int{2, 8}, func(int) int32 { return 500 })
		}, "--data", "DATA"), 2, []string{"500"}},
		{"float data", ver(func(t *testing.T, c *hostileDirs) {
			writeFloats(t, c.D, "tokens", []int{2, 8}, func(int) float32 { return 1 })
		}, "--data", "DATA"), 2, []string{"tokens"}},
		{"manifest config disagrees", ver(func(t *testing.T, c *hostileDirs) {
			editManifestConfig(t, c.VFile, "num_hidden_layers", 6)
		}), 2, []string{"num_hidden_layers"}},
	}
}

func distillCorpus() []hostileCase {
	dis := func(edit func(t *testing.T, c *hostileDirs), extra ...string) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			if edit != nil {
				edit(t, c)
			}
			a := []string{"distill", c.V, "--original", c.M, "--steps", "2", "--data", c.D, "--out", filepath.Join(c.Root, "new")}
			for _, e := range extra {
				a = append(a, strings.ReplaceAll(e, "EVAL", filepath.Join(c.Root, "eval.safetensors")))
			}
			return a
		}
	}
	return []hostileCase{
		{"output over the original", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--out", c.M, "--batch", "0"}
		}, 2, []string{"--batch"}},
		{"output is the original", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--out", c.M, "--data", c.D}
		}, 2, []string{"--out"}},
		{"output over the input", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--out", c.V, "--data", c.D}
		}, 2, []string{"--out"}},
		{"output over the data", func(t *testing.T, c *hostileDirs) []string {
			d := filepath.Join(c.Root, "new", "model.vlora.loss.csv")
			os.MkdirAll(filepath.Dir(d), 0o755)
			writeInts(t, d, "tokens", []int{4, 16}, func(i int) int32 { return int32(i % 96) })
			return []string{"distill", c.V, "--original", c.M, "--out", filepath.Join(c.Root, "new"), "--data", d}
		}, 2, []string{"--out"}},
		{"batch 0 creates nothing", dis(nil, "--batch", "0"), 2, []string{"--batch"}},
		{"batch past the memory budget", dis(nil, "--batch", "60000"), 2, []string{"--batch", "ask for"}},
		{"lr NaN", dis(nil, "--lr", "NaN"), 2, []string{"--lr"}},
		{"negative steps", dis(nil, "--steps", "-1"), 2, []string{"--steps"}},
		{"seq-len past its range", dis(nil, "--seq-len", "100000"), 2, []string{"--seq-len"}},
		{"temperature NaN", dis(nil, "--temperature", "NaN"), 2, []string{"--temperature"}},
		{"unknown train set", dis(nil, "--train", "everything"), 2, []string{"--train"}},
		{"augment prefix as long as the data", dis(nil, "--augment", "4", "--augment-prefix", "16"), 2, []string{"--augment-prefix", "16"}},
		{"augment past its range", dis(nil, "--augment", "-1"), 2, []string{"--augment"}},
		{"teacher of another architecture", func(t *testing.T, c *hostileDirs) []string {
			dir := filepath.Join(c.Root, "gpt2")
			copyDir(t, testenv.GoldenModel(t, "gpt2"), dir)
			return []string{"distill", c.V, "--original", dir, "--steps", "1", "--out", filepath.Join(c.Root, "new")}
		}, 2, []string{"architecture"}},
		{"teacher with other weights", dis(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), qProj, 0.25)
		}), 2, []string{"SHA-256", "--skip-source-check"}},
		{"teacher is the VLoRA file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.V, "--steps", "1", "--data", c.D, "--out", filepath.Join(c.Root, "new")}
		}, 2, []string{"VLoRA"}},
		{"bad eval data rejected before training", dis(func(t *testing.T, c *hostileDirs) {
			writeFloats(t, filepath.Join(c.Root, "eval.safetensors"), "tokens", []int{2, 4}, func(int) float32 { return 1 })
		}, "--eval-data", "EVAL"), 2, []string{"eval.safetensors"}},
		{"data token out of vocabulary", dis(func(t *testing.T, c *hostileDirs) {
			writeInts(t, c.D, "tokens", []int{2, 8}, func(int) int32 { return 96 })
		}), 2, []string{"96"}},
		{"NaN in the student", dis(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, c.VFile, delta1, float32(math.Inf(1)))
		}), 2, []string{delta1}},
		{"NaN in the teacher", dis(func(t *testing.T, c *hostileDirs) {
			pokeTensor(t, filepath.Join(c.M, "model.safetensors"), embed, float32(math.NaN()))
		}, "--skip-source-check"), 2, []string{embed, "non-finite"}},
		{"in place with a bad flag", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--data", c.D, "--weight-decay", "-1"}
		}, 2, []string{"--weight-decay"}},
	}
}

// TestHostileTokenizerAndText runs the cases of hostile tokenizer files
// (out-of-range ids, a backtracking pattern, non-regular files) and
// hostile text data, each under a hard deadline: a case that blocks fails
// after a minute instead of holding the suite.
func TestHostileTokenizerAndText(t *testing.T) {
	fx := newHostileFixture(t)
	for _, tc := range tokenizerCorpus() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fx.copies(t)
			args := tc.setup(t, c)
			before := snapshot(t, c.Root)
			type result struct {
				stderr string
				code   int
			}
			done := make(chan result, 1)
			start := time.Now()
			go func() {
				_, stderr, code := run(t, args...)
				done <- result{stderr, code}
			}()
			var res result
			select {
			case res = <-done:
			case <-time.After(time.Minute):
				t.Fatal("no answer within a minute")
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %v", d)
			}
			line := strings.TrimSuffix(res.stderr, "\n")
			if res.code != tc.code || strings.Contains(line, "\n") || len(line) >= 300 || line == "" {
				t.Fatalf("exit %d, want %d with one line under 300 characters; stderr %q", res.code, tc.code, res.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line %q does not name %q", line, w)
				}
			}
			after := snapshot(t, c.Root)
			if len(after) != len(before) {
				t.Errorf("files before %d, after %d", len(before), len(after))
			}
			for p, h := range after {
				if before[p] != h {
					t.Errorf("left behind or modified: %s", p)
				}
			}
		})
	}
}

// hostileTokenizer writes dir/tokenizer.json: a BPE tokenizer over the
// fixture's 96 ids (<unk> and the printable ASCII characters), edited by
// edit.
func hostileTokenizer(t *testing.T, dir string, edit func(tok map[string]any)) {
	t.Helper()
	var tok map[string]any
	if err := json.Unmarshal(charTokenizer(t), &tok); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(tok)
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tokenizerCorpus holds the hostile tokenizer and text-data cases:
// out-of-range ids and inconsistent files (one error line naming the file
// and the field), a catastrophically backtracking pattern (an error naming
// it within seconds), FIFOs and devices where a file is expected (refused
// at once), binary data named .txt and text directories holding a
// symbolic link to a directory (reported, not skipped).
func tokenizerCorpus() []hostileCase {
	text := strings.Repeat("the quick brown fox jumps over the lazy dog. ", 8)
	// withText writes text data and returns a compress command line
	// reading it with the model's tokenizer.
	withText := func(name, body string, edit func(tok map[string]any)) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, edit)
			p := filepath.Join(c.Root, name)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			return compressArgs(c, "--distill-steps", "2", "--data", p, "--seq-len", "8")
		}
	}
	vocab := func(tok map[string]any) map[string]any {
		return tok["model"].(map[string]any)["vocab"].(map[string]any)
	}
	fifo := func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Skip(err)
		}
	}
	return []hostileCase{
		{"tokenizer id near 2^63", withText("calib.txt", text, func(tok map[string]any) {
			vocab(tok)["x"] = json.Number("9223372036854775807")
		}), 2, []string{"tokenizer.json", "model.vocab", "9223372036854775807"}},
		{"tokenizer added token id in the billions", func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, func(tok map[string]any) {
				tok["added_tokens"] = []any{map[string]any{"id": 3e9, "content": "<x>"}}
			})
			return []string{"tokenize", "--tokenizer", c.M}
		}, 2, []string{"tokenizer.json", "added_tokens"}},
		{"tokenizer merge of unknown tokens", func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, func(tok map[string]any) {
				tok["model"].(map[string]any)["merges"] = []any{"<x> <y>"}
			})
			return []string{"tokenize", "--tokenizer", c.M}
		}, 2, []string{"tokenizer.json", "merge"}},
		{"tokenizer deeply nested", func(t *testing.T, c *hostileDirs) []string {
			b := `{"model":` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `}`
			os.WriteFile(filepath.Join(c.M, "tokenizer.json"), []byte(b), 0o644)
			return []string{"tokenize", "--tokenizer", c.M}
		}, 2, []string{"tokenizer.json", "depth"}},
		{"tokenizer is a device", args("tokenize", "--tokenizer", os.DevNull), 2, []string{os.DevNull, "not a regular file"}},
		{"tokenizer is a FIFO", func(t *testing.T, c *hostileDirs) []string {
			fifo(t, filepath.Join(c.M, "tokenizer.json"))
			return []string{"tokenize", "--tokenizer", c.M}
		}, 2, []string{"tokenizer.json", "not a regular file"}},
		{"tokenizer_config is a FIFO", func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, nil)
			fifo(t, filepath.Join(c.M, "tokenizer_config.json"))
			return compressArgs(c, "--distill-steps", "2", "--data", writeText(t, c.Root, "calib.txt", text), "--seq-len", "8")
		}, 2, []string{"tokenizer_config.json", "not a regular file"}},
		{"catastrophic Split pattern", withText("calib.txt", strings.Repeat("a", 300)+"!", func(tok map[string]any) {
			tok["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": "(a|aa)+$"}, "behavior": "Isolated"}
		}), 2, []string{"calib.txt", "(a|aa)+$"}},
		{"data file is a FIFO", func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, nil)
			p := filepath.Join(c.Root, "pipe.txt")
			fifo(t, p)
			return compressArgs(c, "--distill-steps", "2", "--data", p, "--seq-len", "8")
		}, 2, []string{"pipe.txt", "not a regular file"}},
		{"binary data named .txt", withText("calib.txt", "\x7fELF\x02\x01\x00\x00"+text, nil), 2, []string{"calib.txt", "not UTF-8 text"}},
		{"text directory with a link to a directory", func(t *testing.T, c *hostileDirs) []string {
			hostileTokenizer(t, c.M, nil)
			d := filepath.Join(c.Root, "texts")
			writeText(t, d, "a.txt", text)
			writeText(t, filepath.Join(c.Root, "more"), "b.txt", text)
			if err := os.Symlink(filepath.Join(c.Root, "more"), filepath.Join(d, "more")); err != nil {
				t.Skip(err)
			}
			return compressArgs(c, "--distill-steps", "2", "--data", d, "--seq-len", "8")
		}, 2, []string{"more", "symbolic link to a directory"}},
	}
}

// writeText writes dir/name and returns its path.
func writeText(t *testing.T, dir, name, body string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRankZeroEndToEnd compresses a model whose layers 0 and 1 are equal,
// so that layer 1's increments have rank 0 under --energy, and runs every
// command on the result: a rank-0 increment is legal everywhere.
func TestRankZeroEndToEnd(t *testing.T) {
	root := t.TempDir()
	m := filepath.Join(root, "M")
	copyDir(t, testenv.GoldenModel(t, "llama-gqa-untied"), m)
	p := filepath.Join(m, "model.safetensors")
	f, err := formats.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range f.Names() {
		if !strings.HasPrefix(n, "model.layers.1.") {
			continue
		}
		dst, _ := f.Info(n)
		src, _ := f.Info(strings.Replace(n, "layers.1.", "layers.0.", 1))
		copy(b[dst.Offset:dst.Offset+dst.Size], b[src.Offset:src.Offset+src.Size])
	}
	f.Close()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	v := filepath.Join(root, "V")
	if _, stderr, code := run(t, "compress", "--model", m, "--out", v, "-k", "2", "--energy", "0.9", "--distill-steps", "0"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	mf, vf, err := vlora.ReadManifest(v)
	if err != nil {
		t.Fatal(err)
	}
	vf.Close()
	zero := 0
	for _, inc := range mf.Increments {
		if inc.Layer == 1 && inc.Kind == vlora.KindLowRank && inc.Rank == 0 {
			zero++
		}
	}
	if zero == 0 {
		t.Fatalf("no rank-0 increment in layer 1: %+v", mf.Increments)
	}
	in := filepath.Join(root, "in.safetensors")
	writeInts(t, in, "input_ids", []int{1, 8}, func(i int) int32 { return int32(i) })
	for _, a := range [][]string{
		{"inspect", v},
		{"expand", v, "--out", filepath.Join(root, "dense")},
		{"infer", "--model", v, "--input", in, "--out", filepath.Join(root, "out.safetensors")},
		{"verify", "--original", m, "--compressed", v, "--samples", "2", "--seq-len", "8"},
		{"distill", v, "--original", m, "--steps", "2", "--batch", "2", "--seq-len", "8", "--out", filepath.Join(root, "D")},
	} {
		if _, stderr, code := run(t, a...); code != 0 {
			t.Errorf("%s: exit %d: %s", a[0], code, stderr)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(root, "*", ".*.tmp-*"))
	if len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

// TestCompressUndistillableKeepsSVD checks that a model the distillation
// stage cannot train (BERT has no logits) still gets its SVD-stage file,
// with a note, now that the stage's inputs are prepared before the SVD
// stage runs.
func TestCompressUndistillableKeepsSVD(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, code := run(t, "compress", "--model", testenv.GoldenModel(t, "bert"), "--out", out, "-k", "2", "-r", "4", "--distill-steps", "5", "-q")
	if code != 0 || !strings.Contains(stderr, "SVD initialisation only") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, vlora.FileName)); err != nil {
		t.Fatal(err)
	}
}

// TestHostileOutputs is the corpus of output paths: every command that
// writes owns its output, refuses another's files, a second concurrent
// run, and outputs that name an input, before anything is opened for
// writing.
func TestHostileOutputs(t *testing.T) {
	fx := newHostileFixture(t)
	other := func(t *testing.T, c *hostileDirs) string {
		dir := filepath.Join(c.Root, "other")
		copyDir(t, c.M, dir)
		return dir
	}
	runHostile(t, fx, []hostileCase{
		{"compress into another model's directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"compress", "--model", c.M, "--out", other(t, c), "-k", "2", "-r", "4", "--distill-steps", "0"}
		}, 2, []string{"--out", "config.json", "did not write", "--force"}},
		{"expand into another model's directory", func(t *testing.T, c *hostileDirs) []string {
			dir := filepath.Join(c.Root, "gpt2")
			copyDir(t, testenv.GoldenModel(t, "gpt2"), dir)
			return []string{"expand", c.V, "--out", dir}
		}, 2, []string{"--out", "config.json", "did not write"}},
		{"distill into another model's directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--steps", "1", "--data", c.D, "--out", other(t, c)}
		}, 2, []string{"--out", "config.json", "did not write"}},
		{"compress into a directory another run holds", func(t *testing.T, c *hostileDirs) []string {
			out := filepath.Join(c.Root, "out")
			d, err := outdir.Open(out, outdir.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close(false) })
			return []string{"compress", "--model", c.M, "--out", out, "-k", "2", "-r", "4", "--distill-steps", "0"}
		}, 2, []string{"--out", "in use", outdir.LockName, "pid " + strconv.Itoa(os.Getpid())}},
		{"distill in place while another run holds the directory", func(t *testing.T, c *hostileDirs) []string {
			d, err := outdir.Open(c.V, outdir.Options{InPlace: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close(false) })
			return []string{"distill", c.V, "--original", c.M, "--steps", "1", "--data", c.D}
		}, 2, []string{"in use", outdir.LockName}},
		{"cpuprofile over an input", func(t *testing.T, c *hostileDirs) []string {
			return []string{"compress", "--model", c.M, "--out", filepath.Join(c.Root, "out"), "-k", "2", "-r", "4",
				"--distill-steps", "0", "--cpuprofile", filepath.Join(c.M, "config.json")}
		}, 2, []string{"--cpuprofile", "config.json", "not an earlier output"}},
		{"resume into a new directory with bad data", func(t *testing.T, c *hostileDirs) []string {
			bad := filepath.Join(c.Root, "bad.safetensors")
			writeFloats(t, bad, "tokens", []int{2, 4}, func(int) float32 { return 1 })
			return []string{"compress", "--model", c.M, "--out", filepath.Join(c.Root, "out"), "-k", "2", "-r", "4",
				"--distill-steps", "2", "--resume", "--data", bad}
		}, 2, []string{"bad.safetensors"}},
		{"cpuprofile over the output", func(t *testing.T, c *hostileDirs) []string {
			out := filepath.Join(c.Root, "out.safetensors")
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", out, "--cpuprofile", out}
		}, 2, []string{"--cpuprofile", "--out"}},
		{"cpuprofile is a directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"inspect", c.V, "--cpuprofile", c.Root}
		}, 2, []string{"--cpuprofile", "is a directory"}},
		{"infer output is a directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", c.Root}
		}, 2, []string{"--out", "is a directory"}},
		{"infer output over another file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", c.D}
		}, 2, []string{"--out", "data.safetensors", "not an earlier output"}},
		{"infer output in a missing directory", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", filepath.Join(c.Root, "no", "out.safetensors")}
		}, 2, []string{"--out", "its directory"}},
		{"distill output under a regular file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"distill", c.V, "--original", c.M, "--steps", "1", "--data", c.D, "--out", filepath.Join(c.In, "out")}
		}, 2, []string{"--out", "cannot create the directory"}},
		{"infer output under a regular file", func(t *testing.T, c *hostileDirs) []string {
			return []string{"infer", "--model", c.V, "--input", c.In, "--out", filepath.Join(c.D, "out.safetensors")}
		}, 2, []string{"--out", "not a directory"}},
		{"resume from another model's checkpoint", func(t *testing.T, c *hostileDirs) []string {
			ckpt := filepath.Join(c.V, checkpointName)
			b, err := os.ReadFile(c.VFile)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(ckpt, b, 0o644)
			editManifest(t, ckpt, func(m map[string]any) {
				src := m["sources"].([]any)[0].(map[string]any)
				src["sha256"] = strings.Repeat("0", 64)
			})
			return []string{"distill", c.V, "--original", c.M, "--steps", "4", "--data", c.D, "--resume", "--batch", "2", "--seq-len", "8"}
		}, 2, []string{checkpointName, "another model"}},
		{"resume from a checkpoint its optimizer state disagrees with", func(t *testing.T, c *hostileDirs) []string {
			ckpt := filepath.Join(c.V, checkpointName)
			b, err := os.ReadFile(c.VFile)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(ckpt, b, 0o644)
			w, err := formats.Create(ckpt+".optim", map[string]string{"vlora.distill.step": "3", "vlora.distill.log": "[]"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			return []string{"distill", c.V, "--original", c.M, "--steps", "4", "--data", c.D, "--resume", "--batch", "2", "--seq-len", "8"}
		}, 2, []string{checkpointName, "disagree"}},
	})
}

// TestOutputDirectoryOwned checks what a run leaves in an output directory
// it owns: a re-run removes the files of its own the new run does not
// write (an old tokenizer.json), records its files, leaves no lock or
// staging directory, and an interrupted re-run leaves the distilled file
// of the previous run as it was.
func TestOutputDirectoryOwned(t *testing.T) {
	fx := newHostileFixture(t)
	c := fx.copies(t)
	out := filepath.Join(c.Root, "out")
	compress := []string{"compress", "--model", c.M, "--out", out, "-k", "2", "-r", "4", "--distill-steps", "6",
		"--batch", "2", "--seq-len", "8", "--checkpoint-every", "2", "--data", c.D, "-q"}
	os.WriteFile(filepath.Join(c.M, "tokenizer.json"), []byte(`{"model": {"type": "BPE", "vocab": {}}}`), 0o644)
	if stderr, code := runCtx(t, context.Background(), compress...); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "tokenizer.json")); err != nil {
		t.Fatalf("first run did not copy tokenizer.json: %v", err)
	}
	distilled, err := os.ReadFile(filepath.Join(out, vlora.FileName))
	if err != nil {
		t.Fatal(err)
	}
	// An interrupted re-run (after its first checkpoint) keeps the first
	// run's distilled file.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := afterFile(filepath.Join(outdir.StagingName, checkpointName))(out)
	if _, code := runCtx(t, &stopContext{Context: ctx, cancel: cancel, stop: stop}, compress...); code != 1 {
		t.Fatalf("interrupted run: exit %d, want 1", code)
	}
	if b, _ := os.ReadFile(filepath.Join(out, vlora.FileName)); !bytes.Equal(b, distilled) {
		t.Errorf("an interrupted re-run replaced the distilled file")
	}
	// A re-run without the tokenizer removes the stale copy.
	os.Remove(filepath.Join(c.M, "tokenizer.json"))
	if stderr, code := runCtx(t, context.Background(), compress...); code != 0 {
		t.Fatalf("re-run: exit %d: %s", code, stderr)
	}
	for _, name := range []string{"tokenizer.json", outdir.LockName, outdir.StagingName} {
		if _, err := os.Stat(filepath.Join(out, name)); err == nil {
			t.Errorf("%s left in the output directory", name)
		}
	}
	rec, err := os.ReadFile(filepath.Join(out, outdir.RecordName))
	if err != nil || !strings.Contains(string(rec), vlora.FileName) {
		t.Errorf("record %q (%v) does not list %s", rec, err, vlora.FileName)
	}
}

// TestHostileFlags is the corpus of flag values that would corrupt a
// result or do nothing: sizes derived from flags are bounded, flags
// without effect in the combination given are refused, sampling settings
// that sample nonsense, unrelated models and malformed generation settings
// are refused, and binary data under a text name is not taken as text.
func TestHostileFlags(t *testing.T) {
	fx := newHostileFixture(t)
	shared := func(t *testing.T, c *hostileDirs, name string) string {
		dir := filepath.Join(c.Root, name)
		copyDir(t, testenv.SharedModel(t, name), dir)
		return dir
	}
	gen := func(edit func(t *testing.T, c *hostileDirs, b string), extra ...string) func(*testing.T, *hostileDirs) []string {
		return func(t *testing.T, c *hostileDirs) []string {
			b := shared(t, c, "bytellama")
			if edit != nil {
				edit(t, c, b)
			}
			return append([]string{"generate", "--model", b, "--prompt", "def ", "--max-tokens", "4"}, extra...)
		}
	}
	runHostile(t, fx, []hostileCase{
		// Sizes derived from flags.
		flagCase("group size overflowing the scale count", compressArgs, "--group-size", "--dtype", "int4", "--group-size", "9223372036854775807"),
		flagCase("group size in a scheme overflowing the scale count", compressArgs, "group size", "--dtype", "int4/g9223372036854775807"),
		flagCase("group size in --quant past its bound", compressArgs, "--quant", "--quant", "bases=int4/g99999999999"),
		// Flags that would do nothing.
		flagCase("group size with float storage", compressArgs, "--group-size", "--dtype", "f16", "--group-size", "64"),
		flagCase("group size with the default storage", compressArgs, "--group-size", "--group-size", "64"),
		flagCase("rank with a parameter budget", compressArgs, "--target-params", "--target-params", "0.5"),
		flagCase("energy with a parameter budget", func(c *hostileDirs, extra ...string) []string {
			return append([]string{"compress", "--model", c.M, "--out", filepath.Join(c.Root, "out"), "--energy", "0.9"}, extra...)
		}, "--target-params", "--target-params", "0.5"),
		flagCase("one quant family twice", compressArgs, "twice", "--quant", "bases=int8,Bases=int4"),
		flagCase("oversample with the exact SVD", compressArgs, "--oversample", "--oversample", "20"),
		flagCase("local learning rate without a local stage", compressArgs, "--local-lr", "--local-lr", "0.01"),
		flagCase("augment prefix without continuations", compressArgs, "--augment-prefix", "--augment-prefix", "8"),
		{"budget below the dense parts", func(_ *testing.T, c *hostileDirs) []string {
			return []string{"compress", "--model", c.M, "--out", filepath.Join(c.Root, "out"), "--target-params", "0.001", "--distill-steps", "0"}
		}, 2, []string{"parameter target", "ask for a target of at least"}},
		// Values that give wrong results silently.
		{"denormal temperature", gen(nil, "--temperature", "1e-310"), 2, []string{"--temperature", "0 (greedy)"}},
		{"temperature below the floor", gen(nil, "--temperature", "0.0001"), 2, []string{"--temperature"}},
		{"compare with an unrelated model", func(t *testing.T, c *hostileDirs) []string {
			b, o := shared(t, c, "bytellama"), shared(t, c, "tinystories260K")
			return []string{"generate", "--model", b, "--compare", o, "--prompt", "a", "--max-tokens", "2"}
		}, 2, []string{"--compare", "vocabulary"}},
		{"malformed generation_config.json", gen(func(t *testing.T, c *hostileDirs, b string) {
			os.WriteFile(filepath.Join(b, "generation_config.json"), []byte(`{"eos_token_id": [2,`), 0o644)
		}), 2, []string{"generation_config.json", "not a JSON object"}},
		{"generation_config.json with a string id", gen(func(t *testing.T, c *hostileDirs, b string) {
			os.WriteFile(filepath.Join(b, "generation_config.json"), []byte(`{"eos_token_id": "two"}`), 0o644)
		}), 2, []string{"generation_config.json", "eos_token_id"}},
		{"binary file named .txt", func(t *testing.T, c *hostileDirs) []string {
			b := shared(t, c, "bytellama")
			bin := filepath.Join(c.Root, "calib.txt")
			raw := make([]byte, 4096)
			for i := range raw {
				raw[i] = byte(i*7919 + i>>3)
			}
			os.WriteFile(bin, raw, 0o644)
			return []string{"compress", "--model", b, "--out", filepath.Join(c.Root, "out"), "-r", "4", "--distill-steps", "1", "--data", bin}
		}, 2, []string{"calib.txt", "binary data"}},
		// Accepted: dtype names in any case.
		{"dtype in capitals", func(t *testing.T, c *hostileDirs) []string {
			return compressArgs(c, "--dtype", "INT4", "--quant", "Bases=INT8")
		}, 0, nil},
	})
}

// TestVerifyFailIfWorse checks that a file losing to its same-size
// baseline passes without --fail-if-worse, saying so in its verdict, and
// fails (exit 1, result FAIL) with it.
func TestVerifyFailIfWorse(t *testing.T) {
	fx := newHostileFixture(t)
	c := fx.copies(t)
	verify := []string{"verify", "--original", c.M, "--compressed", c.V, "--samples", "4", "--seq-len", "8", "-q"}
	stdout, stderr, code := run(t, verify...)
	if code != 0 {
		t.Fatalf("verify: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "THE FILE LOSES") {
		t.Skipf("the fixture does not lose to its baseline:\n%s", stdout)
	}
	if !strings.Contains(stdout, "--fail-if-worse") {
		t.Errorf("a PASS over a losing file does not say so:\n%s", stdout)
	}
	stdout, stderr, code = run(t, append(verify, "--fail-if-worse")...)
	if code != 1 {
		t.Fatalf("verify --fail-if-worse: exit %d, want 1: %s", code, stderr)
	}
	if !strings.Contains(stdout, "result  FAIL") && !strings.Contains(stdout, "FAIL\n") {
		t.Errorf("verdict does not say FAIL:\n%s", stdout)
	}
	if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.Contains(stderr, "round to nearest") {
		t.Errorf("stderr %q: want one line naming the baseline", stderr)
	}
	if _, stderr, code := run(t, append(verify, "--fail-if-worse", "--baseline", "none")...); code != 2 {
		t.Errorf("--fail-if-worse --baseline none: exit %d, want 2: %s", code, stderr)
	}
}

// TestExpandRunsInGenerate checks that expand copies the tokenizer and
// generation files, so the expanded directory runs in generate and
// continues a prompt as the VLoRA file does.
func TestExpandRunsInGenerate(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	root := t.TempDir()
	vl, dense := filepath.Join(root, "vlora"), filepath.Join(root, "dense")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "-k", "4", "-r", "8", "--distill-steps", "0", "--init", "plain", "--refit=false", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	if _, stderr, code := run(t, "expand", vl, "--out", dense); code != 0 {
		t.Fatalf("expand: %s", stderr)
	}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(dense, name)); err != nil {
			t.Errorf("expand did not copy %s: %v", name, err)
		}
	}
	gen := func(m string) string {
		stdout, stderr, code := run(t, "generate", "--model", m, "--prompt", "func main(", "--max-tokens", "12", "--temperature", "0", "-q")
		if code != 0 {
			t.Fatalf("generate --model %s: exit %d: %s", m, code, stderr)
		}
		return stdout
	}
	if a, b := gen(vl), gen(dense); a != b {
		t.Errorf("the expanded model continues %q, the VLoRA file %q", b, a)
	}
}

// TestMessagesOnce checks the newcomer's view of the output: compress
// names the file it wrote once, generate --compare labels each speed
// line with its model, and a missing tokenizer lists the directories
// searched as plain paths.
func TestMessagesOnce(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	root := t.TempDir()
	vl := filepath.Join(root, "v")
	stdout, stderr, code := run(t, "compress", "--model", dir, "--out", vl, "-k", "4", "-r", "4", "--distill-steps", "2", "--batch", "2", "--seq-len", "16", "-q")
	if code != 0 {
		t.Fatalf("compress: exit %d: %s", code, stderr)
	}
	if n := strings.Count(stdout, "wrote "); n != 1 || !strings.Contains(stdout, "wrote "+filepath.Join(vl, vlora.FileName)) {
		t.Errorf("compress names its file %d times, want once under its final path:\n%s", n, stdout)
	}
	_, stderr, code = run(t, "generate", "--model", vl, "--compare", dir, "--prompt", "x", "--max-tokens", "2")
	if code != 0 {
		t.Fatalf("generate --compare: exit %d: %s", code, stderr)
	}
	for _, label := range []string{"original: ", "compressed: "} {
		if !strings.Contains(stderr, label) {
			t.Errorf("generate --compare speed lines do not name %q:\n%s", label, stderr)
		}
	}
	empty := filepath.Join(root, "empty")
	os.Mkdir(empty, 0o755)
	_, stderr, code = run(t, "generate", "--model", empty, "--prompt", "x")
	if code != 2 || strings.Contains(stderr, "["+empty) || !strings.Contains(stderr, empty) {
		t.Errorf("missing tokenizer: exit %d, %q; want 2 naming %s as a plain path", code, stderr, empty)
	}
}
