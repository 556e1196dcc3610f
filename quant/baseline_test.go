package quant

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

func TestRoundToNearest(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	mk := func(name string, shape ...int) Weight {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return Weight{Name: name, Shape: shape, Data: randMatrix(rng, 1, n)}
	}
	ws := []Weight{mk("emb", 16, 40), mk("norm", 40), mk("proj", 8, 33)}
	norm := append([]float32(nil), ws[1].Data...)
	proj := append([]float32(nil), ws[2].Data...)
	s := Scheme{Bits: 4, GroupSize: 32}
	f, err := RoundToNearest(ws, s)
	if err != nil {
		t.Fatal(err)
	}
	// 16×40: 640 codes at 4 bits + 20 scales of 16 bits; 40 norms at 32
	// bits; 8×33: 264 codes at 4 bits + ceil(264/32) = 9 scales.
	wantBits := int64(640*4+20*16) + 40*32 + int64(264*4+9*16)
	if f.Params != 640+40+264 || f.Bits != wantBits {
		t.Fatalf("footprint %+v, want %d params, %d bits", f, 640+40+264, wantBits)
	}
	if math.Abs(f.BitsPerWeight()-float64(wantBits)/944) > 1e-12 {
		t.Fatalf("bits per weight %g", f.BitsPerWeight())
	}
	for i, v := range ws[1].Data {
		if v != norm[i] {
			t.Fatalf("1-D tensor changed at %d", i)
		}
	}
	want := make([]float32, len(proj))
	FakeQuant(want, proj, 8, 33, s)
	for i, v := range ws[2].Data {
		if v != want[i] {
			t.Fatalf("proj %d: %g, want %g", i, v, want[i])
		}
	}
}

func TestRoundToNearestErrors(t *testing.T) {
	cases := []struct {
		name string
		ws   []Weight
		s    Scheme
	}{
		{"scheme", []Weight{{"a", []int{1, 1}, []float32{1}}}, Scheme{Bits: 1, GroupSize: 0}},
		{"shape", []Weight{{"a", []int{2, 2}, []float32{1}}}, Scheme{Bits: 4, GroupSize: 0}},
		{"NaN", []Weight{{"a", []int{1, 1}, []float32{float32(math.NaN())}}}, Scheme{Bits: 4, GroupSize: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := RoundToNearest(c.ws, c.s); !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}
