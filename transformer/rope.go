package transformer

import "math"

// ropeTable holds cos and sin of the rotary angles t·θ^(−2i/d) for positions
// t < T and frequencies i < d/2, as [T, d/2]. Angles are formed in float32
// as Hugging Face does (inverse frequency rounded to float32, then the
// float32 product with the position), and their cos/sin taken in float64.
type ropeTable struct {
	half     int
	cos, sin []float32
}

func newRopeTable(T, hd int, theta float64) *ropeTable {
	half := hd / 2
	rt := &ropeTable{half: half, cos: make([]float32, T*half), sin: make([]float32, T*half)}
	for i := range half {
		inv := float32(1 / math.Pow(theta, float64(2*i)/float64(hd)))
		for t := range T {
			ang := float64(float32(t) * inv)
			rt.cos[t*half+i] = float32(math.Cos(ang))
			rt.sin[t*half+i] = float32(math.Sin(ang))
		}
	}
	return rt
}

// rotate applies the rotate-half rotation for position t to the head vector
// x (length 2·half) in place:
//
//	x[i], x[i+half] = x[i]·cos − x[i+half]·sin, x[i+half]·cos + x[i]·sin.
func (rt *ropeTable) rotate(x []float32, t int) {
	h := rt.half
	c := rt.cos[t*h : t*h+h]
	s := rt.sin[t*h : t*h+h]
	lo := x[:h]
	hi := x[h : 2*h]
	for i := range lo {
		a, b := lo[i], hi[i]
		lo[i] = a*c[i] - b*s[i]
		hi[i] = b*c[i] + a*s[i]
	}
}

// rotateBack applies the transpose (inverse) rotation, which maps the
// gradient with respect to the rotated vector onto the original one.
func (rt *ropeTable) rotateBack(x []float32, t int) {
	h := rt.half
	c := rt.cos[t*h : t*h+h]
	s := rt.sin[t*h : t*h+h]
	lo := x[:h]
	hi := x[h : 2*h]
	for i := range lo {
		a, b := lo[i], hi[i]
		lo[i] = a*c[i] + b*s[i]
		hi[i] = b*c[i] - a*s[i]
	}
}

// rotateHeads applies rotate to the heads consecutive head vectors at the
// start of row, all at position t.
func (rt *ropeTable) rotateHeads(row []float32, heads, t int) {
	h := rt.half
	row = row[:heads*2*h]
	if haveAVX2 && h%8 == 0 && heads > 0 {
		c := rt.cos[t*h : t*h+h]
		s := rt.sin[t*h : t*h+h]
		ropeRowAVX2(&row[0], &c[0], &s[0], heads, h)
		return
	}
	for i := range heads {
		rt.rotate(row[i*2*h:(i+1)*2*h], t)
	}
}
