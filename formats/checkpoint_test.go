package formats

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// checkAgainstReference compares every tensor of f with what the
// github.com/nlpodyssey/safetensors reader, which loads the whole file and
// applies the reference implementation's stricter validation, finds in it.
func checkAgainstReference(t *testing.T, f *File) {
	t.Helper()
	data, err := os.ReadFile(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	ref, err := safetensors.Deserialize(data)
	if err != nil {
		t.Fatalf("%s: reference reader: %v", f.Path(), err)
	}
	if got, want := len(f.Names()), len(ref.Names()); got != want {
		t.Errorf("%s: %d tensors, reference reader sees %d", f.Path(), got, want)
	}
	for _, name := range ref.Names() {
		rv, _ := ref.Tensor(name)
		info, ok := f.Info(name)
		if !ok {
			t.Errorf("%s: tensor %q missing", f.Path(), name)
			continue
		}
		if info.DType != rv.DType() || len(info.Shape) != len(rv.Shape()) {
			t.Errorf("%s: tensor %q: %s %v, reference %s %v", f.Path(), name, info.DType, info.Shape, rv.DType(), rv.Shape())
		}
		for i, d := range rv.Shape() {
			if uint64(info.Shape[i]) != d {
				t.Errorf("%s: tensor %q: shape %v, reference %v", f.Path(), name, info.Shape, rv.Shape())
				break
			}
		}
		raw, _, err := f.ReadRaw(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, rv.Data()) {
			t.Errorf("%s: tensor %q: bytes differ from the reference reader's", f.Path(), name)
		}
		if IsFloat(info.DType) {
			v, err := f.ReadFloat32(name)
			if err != nil || len(v) != info.NumElements() {
				t.Errorf("%s: ReadFloat32(%q) = %d values, %v", f.Path(), name, len(v), err)
			}
		} else if IsInt(info.DType) {
			v, err := f.ReadInts(name)
			if err != nil || len(v) != info.NumElements() {
				t.Errorf("%s: ReadInts(%q) = %d values, %v", f.Path(), name, len(v), err)
			}
		}
	}
}

func TestReadByteLlama(t *testing.T) {
	dir := filepath.Join(sharedDir(t), "models", "bytellama")
	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if len(ck.Files) != 1 || filepath.Base(ck.Files[0].Path()) != SingleFile {
		t.Fatalf("files %v, want one %s", ck.Files, SingleFile)
	}
	if n := len(ck.Names()); n != 75 {
		t.Errorf("%d tensors, want 75", n)
	}
	for _, tc := range []struct {
		name  string
		shape []int
	}{
		{"model.embed_tokens.weight", []int{256, 128}},
		{"lm_head.weight", []int{256, 128}},
		{"model.layers.0.self_attn.q_proj.weight", []int{128, 128}},
		{"model.layers.7.self_attn.k_proj.weight", []int{64, 128}},
		{"model.layers.3.mlp.gate_proj.weight", []int{344, 128}},
		{"model.layers.3.mlp.down_proj.weight", []int{128, 344}},
		{"model.norm.weight", []int{128}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			info, ok := ck.Info(tc.name)
			if !ok || !ck.Has(tc.name) {
				t.Errorf("tensor %q missing", tc.name)
				return
			}
			if info.DType != F32 || !slices.Equal(info.Shape, tc.shape) {
				t.Errorf("tensor %q: %s %v, want F32 %v", tc.name, info.DType, info.Shape, tc.shape)
			}
		})
	}
	cfg := ck.Config
	if cfg == nil {
		t.Fatal("no config")
	}
	if cfg.Architecture() != "LlamaForCausalLM" || cfg.HiddenSize != 128 || cfg.NumLayers != 8 ||
		cfg.NumHeads != 8 || cfg.NumKVHeads != 4 || cfg.HeadDim != 16 || cfg.Intermediate != 344 ||
		cfg.VocabSize != 256 || cfg.TieWordEmbeddings || cfg.RopeTheta != 10000 || cfg.NormEps != 1e-5 || cfg.Act != "silu" {
		t.Errorf("config %+v", *cfg)
	}
	checkAgainstReference(t, ck.Files[0])
	if _, err := ck.ReadFloat32("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("ReadFloat32(nope) = %v", err)
	}
}

func TestReadGolden(t *testing.T) {
	golden := filepath.Join(sharedDir(t), "golden")
	dirs, err := os.ReadDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	models := 0
	for _, d := range dirs {
		dir := filepath.Join(golden, d.Name())
		f, err := Open(filepath.Join(dir, "golden.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstReference(t, f)
		if !f.has("logits") && !f.has("last_hidden_state") {
			t.Errorf("%s: neither logits nor last_hidden_state", f.Path())
		}
		f.Close()
		if _, err := os.Stat(filepath.Join(dir, SingleFile)); err != nil {
			continue
		}
		models++
		ck, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		if ck.Config == nil || ck.Config.HiddenSize != 48 || ck.Config.NumLayers != 4 {
			t.Errorf("%s: config %+v", dir, ck.Config)
		}
		checkAgainstReference(t, ck.Files[0])
		ck.Close()
	}
	if models != 5 {
		t.Errorf("found %d tiny models, want 5", models)
	}
}

// has reports whether f holds the named tensor.
func (f *File) has(name string) bool { _, ok := f.Info(name); return ok }

// shardCopy writes the tensors of src (a single-file checkpoint directory)
// into dst as two shards, split after the first half, with config.json and a
// model.safetensors.index.json, and returns the tensor → shard map.
func shardCopy(t *testing.T, src, dst string) map[string]string {
	t.Helper()
	f, err := Open(filepath.Join(src, SingleFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := f.Names()
	halves := [][]string{names[:len(names)/2], names[len(names)/2:]}
	weightMap := map[string]string{}
	var total int64
	for i, part := range halves {
		shard := []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}[i]
		var specs []TensorSpec
		for _, name := range part {
			info, _ := f.Info(name)
			specs = append(specs, TensorSpec{Name: name, DType: info.DType, Shape: info.Shape})
			weightMap[name] = shard
			total += info.Size
		}
		w, err := Create(filepath.Join(dst, shard), map[string]string{"format": "pt"}, specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range part {
			raw, _, err := f.ReadRaw(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteRaw(name, raw); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(src, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	writeIndex(t, dst, map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap})
	return weightMap
}

func writeIndex(t *testing.T, dir string, doc any) {
	t.Helper()
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestShardedCheckpoint checks a two-shard copy of bytellama, as written by
// Hugging Face, against the single file, with the index intact, missing,
// malformed, and wrong in the ways a reader must reject.
func TestShardedCheckpoint(t *testing.T) {
	src := filepath.Join(sharedDir(t), "models", "bytellama")
	single, err := OpenCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()

	withMap := func(edit func(m map[string]string)) func(t *testing.T, dir string, m map[string]string) {
		return func(t *testing.T, dir string, m map[string]string) {
			edit(m)
			writeIndex(t, dir, map[string]any{"weight_map": m})
		}
	}
	const shard1, shard2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	const layer0q = "model.layers.0.self_attn.q_proj.weight"
	for _, tc := range []struct {
		name    string
		edit    func(t *testing.T, dir string, m map[string]string)
		invalid bool     // the error wraps ErrInvalid
		want    []string // error fragments; none means the copy must open
	}{
		{name: "with index"},
		// Shard names no fallback would find prove the index is used.
		{name: "index with other shard names", edit: func(t *testing.T, dir string, m map[string]string) {
			for old, new := range map[string]string{shard1: "part-a.safetensors", shard2: "part-b.safetensors"} {
				if err := os.Rename(filepath.Join(dir, old), filepath.Join(dir, new)); err != nil {
					t.Fatal(err)
				}
				for k, v := range m {
					if v == old {
						m[k] = new
					}
				}
			}
			writeIndex(t, dir, map[string]any{"weight_map": m})
		}},
		{name: "index missing", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.Remove(filepath.Join(dir, IndexFile))
		}},
		{name: "index not JSON", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.WriteFile(filepath.Join(dir, IndexFile), []byte("{not json"), 0o644)
		}},
		{name: "index without weight_map", edit: func(t *testing.T, dir string, _ map[string]string) {
			writeIndex(t, dir, map[string]any{"metadata": map[string]any{}})
		}},
		{name: "index weight_map of wrong type", edit: func(t *testing.T, dir string, _ map[string]string) {
			writeIndex(t, dir, map[string]any{"weight_map": []int{1, 2}})
		}},
		{name: "parent directory", edit: withMap(func(m map[string]string) { m[layer0q] = "../x.safetensors" }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "` + layer0q + `"`, `"../x.safetensors"`, "not a file in the model directory"}},
		{name: "absolute path", edit: withMap(func(m map[string]string) { m[layer0q] = "/etc/x.safetensors" }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "` + layer0q + `"`, `"/etc/x.safetensors"`}},
		{name: "subdirectory", edit: withMap(func(m map[string]string) { m[layer0q] = "sub/" + shard1 }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "` + layer0q + `"`}},
		{name: "dot", edit: withMap(func(m map[string]string) { m[layer0q] = "." }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "` + layer0q + `"`}},
		{name: "missing shard with index", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.Remove(filepath.Join(dir, shard2))
		}, invalid: true, want: []string{IndexFile + ": ", "shard " + shard2 + ` of tensor "`, "no such file"}},
		{name: "index names a file that is not there", edit: withMap(func(m map[string]string) { m[layer0q] = "other.safetensors" }),
			invalid: true, want: []string{IndexFile + ": ", `shard other.safetensors of tensor "` + layer0q + `"`}},
		{name: "missing shard without index", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.Remove(filepath.Join(dir, IndexFile))
			os.Remove(filepath.Join(dir, shard1))
		}, invalid: true, want: []string{"found 1 of 2 shards"}},
		{name: "index maps a tensor to the wrong shard", edit: withMap(func(m map[string]string) { m[layer0q] = shard2 }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "` + layer0q + `" is mapped to ` + shard2 + ", which does not hold it"}},
		{name: "index lists an absent tensor", edit: withMap(func(m map[string]string) { m["extra.weight"] = shard1 }),
			invalid: true, want: []string{IndexFile + ": ", `tensor "extra.weight"`}},
		{name: "tensor in both shards", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.Remove(filepath.Join(dir, IndexFile))
			w, err := Create(filepath.Join(dir, shard2), nil, []TensorSpec{{Name: layer0q, DType: F32, Shape: []int{1}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteFloat32(layer0q, []float32{0}); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}, invalid: true, want: []string{shard2 + ": ", `tensor "` + layer0q + `" is also stored in`, shard1}},
		{name: "corrupt shard", edit: func(t *testing.T, dir string, _ map[string]string) {
			os.WriteFile(filepath.Join(dir, shard2), []byte("garbage!garbage!"), 0o644)
		}, invalid: true, want: []string{shard2 + ": ", "exceeds the 100000000-byte limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				m := shardCopy(t, src, dir)
				if tc.edit != nil {
					tc.edit(t, dir, m)
				}
				ck, err := OpenCheckpoint(dir)
				if len(tc.want) > 0 {
					if ck != nil {
						ck.Close()
					}
					if err == nil {
						t.Fatal("no error")
					}
					if tc.invalid {
						checkInvalid(t, err, tc.want...)
					}
					if !strings.HasPrefix(err.Error(), dir) {
						t.Errorf("error %q does not start with a path in the model directory", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				defer ck.Close()
				var files []string
				for _, f := range ck.Files {
					files = append(files, filepath.Base(f.Path()))
				}
				var want []string
				for _, v := range m {
					want = append(want, v)
				}
				slices.Sort(want)
				if want = slices.Compact(want); !slices.Equal(files, want) {
					t.Fatalf("files %v, want %v", files, want)
				}
				if ck.Config == nil || ck.Config.HiddenSize != 128 {
					t.Errorf("config %+v", ck.Config)
				}
				// Same tensors, in the same order, with the same values.
				if got, want := ck.Names(), single.Names(); !slices.Equal(got, want) {
					t.Errorf("names %v, want %v", got, want)
				}
				for _, name := range single.Names() {
					want, err := single.ReadFloat32(name)
					if err != nil {
						t.Fatal(err)
					}
					got, err := ck.ReadFloat32(name)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("tensor %q differs from the single file", name)
					}
					info, _ := ck.Info(name)
					if filepath.Base(info.File) != m[name] {
						t.Errorf("tensor %q read from %s, index says %s", name, info.File, m[name])
					}
				}
				for _, f := range ck.Files {
					if f.Metadata()["format"] != "pt" {
						t.Errorf("%s: metadata %v", f.Path(), f.Metadata())
					}
				}
			})
		})
	}
}

func TestCheckpointDirectoryErrors(t *testing.T) {
	write := func(t *testing.T, dir, name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	small := rawFile(header(nil, entry{"a", "F32", []uint64{1}, [2]uint64{0, 4}}), make([]byte, 4))
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to open
		want  []string
		ok    []string // tensor names, when the directory must open
	}{
		{"not a directory", func(t *testing.T, dir string) string {
			write(t, dir, "file", nil)
			return filepath.Join(dir, "file")
		}, []string{"not a directory"}, nil},
		{"empty directory", func(t *testing.T, dir string) string { return dir },
			[]string{"no model.safetensors, model.safetensors.index.json or model-*-of-*.safetensors shards"}, nil},
		{"two loose files", func(t *testing.T, dir string) string {
			write(t, dir, "a.safetensors", small)
			write(t, dir, "b.safetensors", small)
			return dir
		}, []string{"no model.safetensors"}, nil},
		{"one loose file", func(t *testing.T, dir string) string {
			write(t, dir, "vlora.safetensors", small)
			return dir
		}, nil, []string{"a"}},
		{"inconsistent shard counts", func(t *testing.T, dir string) string {
			write(t, dir, "model-00001-of-00002.safetensors", small)
			write(t, dir, "model-00002-of-00003.safetensors", small)
			return dir
		}, []string{"inconsistent shard names (model-00002-of-00003.safetensors)"}, nil},
		{"duplicate shard numbers", func(t *testing.T, dir string) string {
			write(t, dir, "model-00001-of-00002.safetensors", small)
			write(t, dir, "model-1-of-2.safetensors", small)
			return dir
		}, []string{"inconsistent shard names"}, nil},
		{"shard number overflow", func(t *testing.T, dir string) string {
			write(t, dir, "model-99999999999999999999999-of-00001.safetensors", small)
			return dir
		}, []string{"shard number out of range"}, nil},
		{"bad config", func(t *testing.T, dir string) string {
			write(t, dir, SingleFile, small)
			write(t, dir, ConfigFile, []byte("[]"))
			return dir
		}, []string{ConfigFile + ": ", "not a JSON object"}, nil},
		{"no config", func(t *testing.T, dir string) string {
			write(t, dir, SingleFile, small)
			return dir
		}, nil, []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				p := tc.setup(t, dir)
				ck, err := OpenCheckpoint(p)
				if tc.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					defer ck.Close()
					if !slices.Equal(ck.Names(), tc.ok) {
						t.Errorf("names %v, want %v", ck.Names(), tc.ok)
					}
					if tc.name == "no config" && ck.Config != nil {
						t.Errorf("config %+v, want nil", ck.Config)
					}
					return
				}
				checkInvalid(t, err, append([]string{p}, tc.want...)...)
			})
		})
	}
	if _, err := OpenCheckpoint(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "model directory") {
		t.Errorf("missing directory: %v", err)
	}
}
