package convert

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// fullRankTol bounds ‖expanded − original‖/‖original‖ at full rank. The only
// error is float32 rounding of base + delta (a few ulps, ~1e-7); 1e-5 is the
// product requirement.
const fullRankTol = 1e-5

func modelDirs(t *testing.T) map[string]string {
	dirs := map[string]string{
		"bytellama": testenv.SharedModel(t, "bytellama"),
		"bytegpt2":  testenv.SharedModel(t, "bytegpt2"),
	}
	for _, n := range []string{"llama-gqa-untied", "qwen2-bias-tied", "gpt2", "bert", "vit"} {
		dirs[n] = testenv.GoldenModel(t, n)
	}
	return dirs
}

func relErr(got, want []float32) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestFullRankRoundTrip compresses at full rank, expands, and compares every
// tensor with the original.
func TestFullRankRoundTrip(t *testing.T) {
	for name, dir := range modelDirs(t) {
		for _, base := range []vlora.BaseMode{vlora.BaseFirst, vlora.BaseMean, vlora.BaseZero} {
			for _, mode := range []string{"energy1", "bigrank"} {
				t.Run(fmt.Sprintf("%s/%s/%s", name, base, mode), func(t *testing.T) {
					opt := Options{}
					opt.Base = base
					opt.CompoundSize = 3
					if mode == "energy1" {
						opt.Rank, opt.Energy = 0, 1
					} else {
						opt.Rank = 1 << 20
					}
					out := t.TempDir()
					res, err := Compress(context.Background(), dir, filepath.Join(out, "v"), opt)
					if err != nil {
						t.Fatal(err)
					}
					if err := Expand(context.Background(), res.Path, filepath.Join(out, "x")); err != nil {
						t.Fatal(err)
					}
					compareCheckpoints(t, dir, filepath.Join(out, "x"), res.Manifest, base == vlora.BaseFirst)
				})
			}
		}
	}
}

func compareCheckpoints(t *testing.T, origDir, expDir string, mf *vlora.Manifest, baseExact bool) {
	t.Helper()
	orig, err := formats.OpenCheckpoint(origDir)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	exp, err := formats.OpenCheckpoint(expDir)
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	if len(orig.Names()) != len(exp.Names()) {
		t.Fatalf("expanded has %d tensors, original %d", len(exp.Names()), len(orig.Names()))
	}
	st := vlora.Stack{Prefix: mf.LayerPrefix, NumLayers: mf.NumLayers, Shapes: map[string][]int{}}
	for _, s := range mf.Suffixes {
		st.Shapes[s.Name] = s.Shape
	}
	for _, n := range orig.Names() {
		oi, _ := orig.Info(n)
		ei, ok := exp.Info(n)
		if !ok {
			t.Errorf("tensor %s missing after expand", n)
			continue
		}
		if oi.DType != ei.DType || fmt.Sprint(oi.Shape) != fmt.Sprint(ei.Shape) {
			t.Errorf("%s: %s%v became %s%v", n, oi.DType, oi.Shape, ei.DType, ei.Shape)
		}
		a, _ := orig.ReadFloat32(n)
		b, _ := exp.ReadFloat32(n)
		l, _, inStack := st.Split(n)
		isBase := !inStack || (baseExact && l%mf.CompoundSize == 0)
		if isBase {
			of, _ := fileOf(orig, n)
			ra, _, _ := of.ReadRaw(n)
			rb, _, _ := exp.Files[0].ReadRaw(n)
			if string(ra) != string(rb) {
				t.Errorf("%s: base/pass-through tensor not bit-identical", n)
			}
			continue
		}
		if e := relErr(b, a); e > fullRankTol {
			t.Errorf("%s: relative error %.3g > %g", n, e, fullRankTol)
		}
	}
	if _, err := os.Stat(filepath.Join(expDir, "config.json")); err != nil {
		t.Errorf("expand wrote no config.json: %v", err)
	}
}

func fileOf(ck *formats.Checkpoint, name string) (*formats.File, bool) {
	for _, f := range ck.Files {
		if _, ok := f.Info(name); ok {
			return f, true
		}
	}
	return nil, false
}

// writeCopy rewrites the checkpoint in dir into out with dtype dt, split into
// shards files (with an index when shards > 1).
func writeCopy(t *testing.T, dir, out string, dt formats.DType, shards int) {
	t.Helper()
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	names := ck.Names()
	weightMap := map[string]string{}
	per := (len(names) + shards - 1) / shards
	for s := 0; s < shards; s++ {
		part := names[s*per : min(len(names), (s+1)*per)]
		file := formats.SingleFile
		if shards > 1 {
			file = fmt.Sprintf("model-%05d-of-%05d.safetensors", s+1, shards)
		}
		var specs []formats.TensorSpec
		for _, n := range part {
			ti, _ := ck.Info(n)
			specs = append(specs, formats.TensorSpec{Name: n, DType: dt, Shape: ti.Shape})
			weightMap[n] = file
		}
		w, err := formats.Create(filepath.Join(out, file), nil, specs)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range part {
			d, _ := ck.ReadFloat32(n)
			if err := w.WriteFloat32(n, d); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if shards > 1 {
		idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
		os.WriteFile(filepath.Join(out, formats.IndexFile), idx, 0o644)
	}
	os.WriteFile(filepath.Join(out, formats.ConfigFile), ck.Config.Bytes, 0o644)
}

// TestDTypesAndShardsAgree compresses F32, BF16, F16 and 2-shard copies of
// bytellama and compares the stored tensors with the F32 result.
func TestDTypesAndShardsAgree(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	tmp := t.TempDir()
	opt := Options{}
	opt.Base = vlora.BaseMean
	ref, err := Compress(context.Background(), dir, filepath.Join(tmp, "ref"), opt)
	if err != nil {
		t.Fatal(err)
	}
	refModel, err := vlora.Load(ref.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		dt     formats.DType
		shards int
		// tol bounds the relative difference of every stored tensor: the
		// input rounding (2^-8 for BF16, 2^-11 for F16) perturbs the
		// increments, and the SVD of a perturbed increment moves by about
		// the perturbation relative to the singular-value gaps, so the bound
		// is a few times the unit roundoff. B·A products are compared, since
		// individual singular vectors may rotate within near-degenerate pairs.
		tol float64
	}{
		{"f32-2shards", formats.F32, 2, 1e-6},
		{"bf16", formats.BF16, 1, 0.05},
		{"f16", formats.F16, 1, 0.01},
		{"bf16-2shards", formats.BF16, 2, 0.05},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run(tc.name, func(t *testing.T) {
				src := filepath.Join(tmp, tc.name)
				writeCopy(t, dir, src, tc.dt, tc.shards)
				res, err := Compress(context.Background(), src, filepath.Join(tmp, tc.name+"-out"), opt)
				if err != nil {
					t.Fatal(err)
				}
				if res.Manifest.Counts.ParamsStored != ref.Manifest.Counts.ParamsStored {
					t.Fatalf("stored params %d, want %d", res.Manifest.Counts.ParamsStored, ref.Manifest.Counts.ParamsStored)
				}
				if tc.shards > 1 && len(res.Manifest.Sources) != tc.shards {
					t.Errorf("manifest records %d sources, want %d", len(res.Manifest.Sources), tc.shards)
				}
				m, err := vlora.Load(res.Path)
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range m.OriginalNames() {
					got, _, _ := m.Tensor(n)
					want, _, _ := refModel.Tensor(n)
					if e := relErr(got, want); e > tc.tol {
						t.Errorf("%s: relative difference %.3g > %g", n, e, tc.tol)
					}
				}
			})
		})
	}
}
