package align

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestMeasureDistances prints (with -v), for bytellama or the checkpoint in
// $VLORA_ALIGN_MODEL cut into one compound, the mean over layers of
// ‖W_l − mean‖/‖W_l‖ per matrix kind before alignment and after it with
// each reference, and checks that every reference brings every kind closer
// to the mean than no alignment does.
func TestMeasureDistances(t *testing.T) {
	dir := os.Getenv("VLORA_ALIGN_MODEL")
	if dir == "" {
		dir = testenv.SharedModel(t, "bytellama")
	}
	ck, err := formats.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ck.Close()
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		t.Fatal(err)
	}
	lay, err := NewLayout(ck.Config, st)
	if err != nil {
		t.Fatal(err)
	}
	var ws []*weights
	for l := range st.NumLayers {
		w, err := readLayer(context.Background(), ck.ReadFloat32, lay, st, l)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	rows := map[string]map[role]float64{"none": distances(t, lay, ws, identityTransforms(len(ws)))}
	for _, it := range []int{0, 1, 3, 6} {
		ts, err := alignCompound(context.Background(), lay, ws, it)
		if err != nil {
			t.Fatal(err)
		}
		name := "first"
		if it > 0 {
			name = fmt.Sprintf("mean×%d", it)
		}
		rows[name] = distances(t, lay, ws, ts)
	}
	var names []string
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		line := n + ":"
		for _, r := range []role{qWeight, kWeight, vWeight, oWeight, gateWeight, upWeight, downWeight} {
			line += fmt.Sprintf(" %s=%.3f", roleSuffix(r), rows[n][r])
		}
		t.Log(line)
	}
	for _, n := range names {
		for r, d := range rows[n] {
			if n != "none" && d >= rows["none"][r] {
				t.Errorf("reference %s: %s distance %.4f, not below %.4f unaligned", n, roleSuffix(r), d, rows["none"][r])
			}
		}
	}
}
