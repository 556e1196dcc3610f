package quant

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// randMatrix returns rows × cols values, normal with a few outliers so
// that groups have different scales.
func randMatrix(rng *rand.Rand, rows, cols int) []float32 {
	x := make([]float32, rows*cols)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 0.05)
		if rng.IntN(97) == 0 {
			x[i] *= 20
		}
	}
	return x
}

// unpackNaive reads code i of width bits from the stream bit by bit.
func unpackNaive(codes []byte, i, bits int) int {
	u := 0
	for b := 0; b < bits; b++ {
		bit := i*bits + b
		if codes[bit/8]>>(bit%8)&1 == 1 {
			u |= 1 << b
		}
	}
	return u
}

var testShapes = []struct{ rows, cols int }{
	{1, 1}, {3, 7}, {5, 32}, {4, 33}, {7, 100}, {2, 344}, {13, 31},
}

var testSchemes = []Scheme{
	{2, 32, false}, {3, 32, false}, {4, 32, false}, {5, 16, false}, {6, 64, false}, {7, 8, false},
	{8, 0, false}, {4, 0, false}, {3, 5, false}, {8, 128, false},
	{2, 32, true}, {3, 32, true}, {4, 32, true}, {5, 7, true}, {8, 0, true},
}

func TestQuantizeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range testSchemes {
		for _, sh := range testShapes {
			t.Run(fmt.Sprintf("%s/%dx%d", s, sh.rows, sh.cols), func(t *testing.T) {
				x := randMatrix(rng, sh.rows, sh.cols)
				qt, err := Quantize(x, sh.rows, sh.cols, s)
				if err != nil {
					t.Fatal(err)
				}
				ng := (sh.rows*sh.cols + s.group(sh.cols) - 1) / s.group(sh.cols)
				if len(qt.Scales) != ng || len(qt.Codes) != (sh.rows*sh.cols*s.Bits+7)/8 {
					t.Fatalf("%d scales, %d code bytes", len(qt.Scales), len(qt.Codes))
				}
				got := make([]float32, len(x))
				qt.Dequantize(got)
				fq := make([]float32, len(x))
				FakeQuant(fq, x, sh.rows, sh.cols, s)
				g := s.group(sh.cols)
				lo, hi := codeRange(s)
				for r := 0; r < sh.rows; r++ {
					for c := 0; c < sh.cols; c++ {
						i := r*sh.cols + c
						ss := formats.F16ToFloat32(qt.Scales[i/g])
						sc := abs32(ss)
						// The error of round to nearest is at most half a
						// step; 1e-6 relative covers float32 rounding of
						// code·scale and of x/scale. Full range clamps the
						// side opposite the group's extreme at 2^(b-1)-1
						// steps, where the value may lie up to a whole step
						// further out.
						bound := float64(sc) / 2
						if ss != 0 && x[i]/ss > hi+0.5 {
							bound = float64(sc)
						}
						if d := math.Abs(float64(got[i] - x[i])); d > bound+1e-6*math.Abs(float64(x[i])) {
							t.Fatalf("element %d,%d: %g → %g, error %g > %g", r, c, x[i], got[i], d, bound)
						}
						u := unpackNaive(qt.Codes, i, s.Bits)
						cd := u - (1 << (s.Bits - 1))
						if float32(cd) < lo || float32(cd) > hi {
							t.Fatalf("element %d: code %d outside [%g, %g]", i, cd, lo, hi)
						}
						if want := float32(cd) * formats.F16ToFloat32(qt.Scales[i/g]); got[i] != want {
							t.Fatalf("element %d: dequantized %g, packed code %d × scale %g = %g", i, got[i], cd, sc, want)
						}
						if fq[i] != got[i] {
							t.Fatalf("element %d: FakeQuant %g, Dequantize %g", i, fq[i], got[i])
						}
					}
				}
				// Each group's largest magnitude maps to ±Q, or to
				// -2^(b-1) for full range (up to F16 rounding of the
				// scale).
				for k, h := range qt.Scales {
					if h == 0 {
						continue
					}
					grp := x[k*g : min((k+1)*g, len(x))]
					want := absMax(grp) / hi
					if s.Full {
						want = -absMax(grp) / lo
					}
					if got := abs32(formats.F16ToFloat32(h)); math.Abs(float64(got-want))/float64(want) > 1.0/1024 {
						t.Fatalf("group %d: scale %g, want %g", k, got, want)
					}
				}
			})
		}
	}
}

func TestFakeQuantInPlace(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := Scheme{Bits: 4, GroupSize: 32}
	x := randMatrix(rng, 9, 70)
	want := make([]float32, len(x))
	FakeQuant(want, x, 9, 70, s)
	FakeQuant(x, x, 9, 70, s)
	for i := range x {
		if x[i] != want[i] {
			t.Fatalf("element %d: in place %g, out of place %g", i, x[i], want[i])
		}
	}
}

func TestZeroAndTinyGroups(t *testing.T) {
	cases := []struct {
		name string
		val  float32
	}{
		{"zero", 0},
		{"negative zero", float32(math.Copysign(0, -1))},
		{"below F16 range", 1e-12},
		{"F16 subnormal scale", 1e-6},
	}
	for _, c := range cases {
		for _, s := range []Scheme{{2, 32, false}, {4, 32, false}, {8, 0, false}, {2, 32, true}} {
			t.Run(c.name+"/"+s.String(), func(t *testing.T) {
				x := make([]float32, 3*40)
				for i := range x {
					x[i] = c.val
				}
				qt, err := Quantize(x, 3, 40, s)
				if err != nil {
					t.Fatal(err)
				}
				got := make([]float32, len(x))
				qt.Dequantize(got)
				for i, v := range got {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("element %d: %g", i, v)
					}
					// Error bound: half a step (the scale never underflows
					// to zero for a nonzero group).
					if d := math.Abs(float64(v - x[i])); d > float64(abs32(formats.F16ToFloat32(qt.Scales[0])))/2 {
						t.Fatalf("element %d: %g → %g", i, x[i], v)
					}
				}
			})
		}
	}
}

func TestHugeValuesSaturateScale(t *testing.T) {
	x := []float32{1e30, -1e30, 3, 0}
	qt, err := Quantize(x, 1, 4, Scheme{Bits: 8, GroupSize: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := formats.F16ToFloat32(qt.Scales[0]); got != maxF16 {
		t.Fatalf("scale %g, want the F16 maximum", got)
	}
	got := make([]float32, 4)
	qt.Dequantize(got)
	if got[0] != 127*maxF16 || got[1] != -127*maxF16 {
		t.Fatalf("saturated values %v", got[:2])
	}
}

func TestQuantizeErrors(t *testing.T) {
	cases := []struct {
		name       string
		data       []float32
		rows, cols int
		s          Scheme
	}{
		{"1 bit", make([]float32, 4), 2, 2, Scheme{Bits: 1, GroupSize: 0}},
		{"9 bits", make([]float32, 4), 2, 2, Scheme{Bits: 9, GroupSize: 0}},
		{"negative group", make([]float32, 4), 2, 2, Scheme{Bits: 4, GroupSize: -1}},
		{"group past MaxGroupSize", make([]float32, 4), 2, 2, Scheme{Bits: 4, GroupSize: MaxGroupSize + 1}},
		{"group near MaxInt", make([]float32, 4), 2, 2, Scheme{Bits: 4, GroupSize: math.MaxInt}},
		{"shape", make([]float32, 5), 2, 2, Scheme{Bits: 4, GroupSize: 0}},
		{"NaN", []float32{0, float32(math.NaN())}, 1, 2, Scheme{Bits: 4, GroupSize: 0}},
		{"Inf", []float32{float32(math.Inf(-1)), 0}, 1, 2, Scheme{Bits: 4, GroupSize: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Quantize(c.data, c.rows, c.cols, c.s); !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCheckRejectsMismatch(t *testing.T) {
	qt, err := Quantize(make([]float32, 6), 2, 3, Scheme{Bits: 4, GroupSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	bad := *qt
	bad.Codes = bad.Codes[:1]
	if err := bad.Check(); !errors.Is(err, formats.ErrInvalid) {
		t.Fatalf("short codes: %v", err)
	}
	bad = *qt
	bad.Scales = append(bad.Scales, 0)
	if err := bad.Check(); !errors.Is(err, formats.ErrInvalid) {
		t.Fatalf("extra scale: %v", err)
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, uint8(4), uint8(3), uint8(2))
	f.Add([]byte{0xff, 0x7f, 0x80, 0, 0, 0, 0x80, 0x7f}, uint8(3), uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, bits, group, rows uint8) {
		x := make([]float32, len(raw)/4)
		for i := range x {
			x[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		r := int(rows%4) + 1
		if len(x)%r != 0 {
			x = x[:len(x)/r*r]
		}
		c := len(x) / r
		s := Scheme{Bits: int(bits%9) + 1, GroupSize: int(group % 40)}
		qt, err := Quantize(x, r, c, s)
		if err != nil {
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		got := make([]float32, len(x))
		qt.Dequantize(got)
		for i, v := range got {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("element %d: %g → %g", i, x[i], v)
			}
		}
		fq := make([]float32, len(x))
		FakeQuant(fq, x, r, c, s)
		for i := range fq {
			if fq[i] != got[i] {
				t.Fatalf("element %d: FakeQuant %g, Dequantize %g", i, fq[i], got[i])
			}
		}
	})
}

func TestParseScheme(t *testing.T) {
	cases := []struct {
		in   string
		want Scheme
		ok   bool
	}{
		{"int4/g32", Scheme{Bits: 4, GroupSize: 32}, true},
		{"int8/row", Scheme{Bits: 8, GroupSize: 0}, true},
		{"int8", Scheme{Bits: 8, GroupSize: 0}, true},
		{"int2/g64", Scheme{Bits: 2, GroupSize: 64}, true},
		{"int9/g32", Scheme{}, false},
		{"int4/g0", Scheme{}, false},
		{"int4/x32", Scheme{}, false},
		{"int3/g32/full", Scheme{3, 32, true}, true},
		{"int2/row/full", Scheme{2, 0, true}, true},
		{"uint4", Scheme{}, false},
		{"int4/g9223372036854775807", Scheme{}, false},
		{"int4/g16777217", Scheme{}, false},
		{"int4/g16777216", Scheme{Bits: 4, GroupSize: MaxGroupSize}, true},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseScheme(c.in)
			if (err == nil) != c.ok || got != c.want {
				t.Fatalf("ParseScheme(%q) = %v, %v", c.in, got, err)
			}
			if c.ok && got.String() != c.in && c.in != "int8" {
				t.Fatalf("String() = %q", got.String())
			}
		})
	}
}

// TestLargestGroup checks that the largest group size gives one scale per
// matrix smaller than it, never zero, and decodes what it encoded.
func TestLargestGroup(t *testing.T) {
	s := Scheme{Bits: 4, GroupSize: MaxGroupSize}
	data := []float32{1, -2, 3, 0.5, -0.25, 4}
	q, err := Quantize(data, 2, 3, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Scales) != 1 {
		t.Fatalf("%d scales, want 1", len(q.Scales))
	}
	got := make([]float32, len(data))
	q.Dequantize(got)
	// int4 symmetric: 7 levels per side of amax 4, so every value lies
	// within half a level, 4/7/2, of its decoding (plus the F16 scale's
	// rounding).
	const tol = 4.0/7/2 + 1e-3
	for i := range data {
		if math.Abs(float64(got[i]-data[i])) > tol {
			t.Errorf("element %d decodes to %v, want %v ± %.3f", i, got[i], data[i], tol)
		}
	}
}

func TestBitsPerWeight(t *testing.T) {
	cases := []struct {
		s          Scheme
		rows, cols int
		want       float64
	}{
		{Scheme{Bits: 4, GroupSize: 32}, 128, 128, 4.5},
		{Scheme{Bits: 8, GroupSize: 0}, 256, 128, 8 + 16.0/128},
		// 128·344 = 1376·32: groups run across row ends.
		{Scheme{Bits: 4, GroupSize: 32}, 128, 344, 4.5},
		{Scheme{Bits: 4, GroupSize: 32}, 3, 7, 4 + 16.0/21},
		{Scheme{Bits: 8, GroupSize: 0}, 3, 7, 8 + 16.0/7},
		{Scheme{Bits: 2, GroupSize: 32}, 1, 16, 2 + 1},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%dx%d", c.s, c.rows, c.cols), func(t *testing.T) {
			if got := c.s.BitsPerWeight(c.rows, c.cols); math.Abs(got-c.want) > 1e-12 {
				t.Fatalf("got %g, want %g", got, c.want)
			}
		})
	}
}
