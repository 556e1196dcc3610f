package align

import "fmt"

// Transform re-expresses one layer. A nil field leaves its part unchanged.
type Transform struct {
	// Neurons[i] is the original MLP neuron that becomes neuron i: rows of
	// gate_proj and up_proj (and their biases), columns of down_proj.
	Neurons []int
	// KVHeads[g] is the original key/value head that becomes head g.
	KVHeads []int
	// Heads[h] is the original query head that becomes head h; head h
	// belongs to group h/(Heads/KVHeads), and Heads keeps every query head in
	// the group of the key/value head it is moved with.
	Heads []int
	// VO[g], HeadDim×HeadDim row-major and orthogonal, rotates the rows of
	// value head g (after the permutation): v ← R·v; the columns of every
	// query head of group g in o_proj are multiplied by Rᵀ.
	VO [][]float64
	// Planes[g] holds cos, sin of one rotation per rotary plane i (dims i
	// and i+HeadDim/2, the rotate-half layout): Planes[g][2i], Planes[g][2i+1].
	// It rotates that plane of key head g and of every query head of its
	// group, (x_i, x_{i+h}) ← (c·x_i − s·x_{i+h}, s·x_i + c·x_{i+h}), which
	// commutes with the rotary embedding and keeps every q·k.
	Planes [][]float64
}

// apply re-expresses data, a tensor of role r, in place.
func apply[T float32 | float64](lay *Layout, t *Transform, r role, data []T) error {
	hd, h := lay.HeadDim, lay.Hidden
	want := map[role]int{
		qWeight: lay.Heads * hd * h, qBias: lay.Heads * hd, kWeight: lay.KVHeads * hd * h, kBias: lay.KVHeads * hd,
		vWeight: lay.KVHeads * hd * h, vBias: lay.KVHeads * hd, oWeight: h * lay.Heads * hd,
		gateWeight: lay.Intermediate * h, gateBias: lay.Intermediate, upWeight: lay.Intermediate * h,
		upBias: lay.Intermediate, downWeight: h * lay.Intermediate,
	}
	if n, ok := want[r]; ok && len(data) != n {
		return fmt.Errorf("align: %s has %d values, want %d", roleSuffix(r), len(data), n)
	}
	cols := h
	switch r {
	case qBias, kBias, vBias, gateBias, upBias:
		cols = 1
	}
	g := lay.group()
	switch r {
	case qWeight, qBias:
		permuteRows(data, hd*cols, t.Heads)
		if t.Planes != nil {
			rotatePlanes(data, lay.Heads, hd, cols, func(head int) []float64 { return t.Planes[head/g] })
		}
	case kWeight, kBias:
		permuteRows(data, hd*cols, t.KVHeads)
		if t.Planes != nil {
			rotatePlanes(data, lay.KVHeads, hd, cols, func(head int) []float64 { return t.Planes[head] })
		}
	case vWeight, vBias:
		permuteRows(data, hd*cols, t.KVHeads)
		if t.VO != nil {
			rotateRows(data, lay.KVHeads, hd, cols, t.VO)
		}
	case oWeight:
		transformO(data, lay, t)
	case gateWeight, gateBias, upWeight, upBias:
		permuteRows(data, cols, t.Neurons)
	case downWeight:
		if t.Neurons != nil {
			permuteCols(data, h, lay.Intermediate, 1, t.Neurons)
		}
	}
	return nil
}

// permuteRows moves block perm[i] of data (blocks of size block) to
// position i; nil perm leaves data unchanged.
func permuteRows[T float32 | float64](data []T, block int, perm []int) {
	if perm == nil {
		return
	}
	old := append([]T(nil), data...)
	for i, p := range perm {
		copy(data[i*block:(i+1)*block], old[p*block:(p+1)*block])
	}
}

// permuteCols moves column block perm[i] (of width block) of the
// rows×(n·block) matrix data to position i.
func permuteCols[T float32 | float64](data []T, rows, n, block int, perm []int) {
	cols := n * block
	old := make([]T, cols)
	for r := range rows {
		row := data[r*cols : (r+1)*cols]
		copy(old, row)
		for i, p := range perm {
			copy(row[i*block:(i+1)*block], old[p*block:(p+1)*block])
		}
	}
}

// rotatePlanes rotates the rotary planes of each of the heads consecutive
// head blocks (hd rows of cols values) by the rotations planes(head).
func rotatePlanes[T float32 | float64](data []T, heads, hd, cols int, planes func(int) []float64) {
	half := hd / 2
	for head := range heads {
		cs := planes(head)
		blk := data[head*hd*cols : (head+1)*hd*cols]
		for i := range half {
			c, s := cs[2*i], cs[2*i+1]
			lo, hi := blk[i*cols:(i+1)*cols], blk[(i+half)*cols:(i+half+1)*cols]
			for j := range lo {
				a, b := float64(lo[j]), float64(hi[j])
				lo[j], hi[j] = T(c*a-s*b), T(s*a+c*b)
			}
		}
	}
}

// rotateRows replaces each head block X (hd rows of cols values) by R·X,
// R = rs[head] (hd×hd row-major).
func rotateRows[T float32 | float64](data []T, heads, hd, cols int, rs [][]float64) {
	col := make([]float64, hd)
	for head := range heads {
		r := rs[head]
		blk := data[head*hd*cols : (head+1)*hd*cols]
		for j := range cols {
			for b := range hd {
				col[b] = float64(blk[b*cols+j])
			}
			for a := range hd {
				var acc float64
				for b, x := range col {
					acc += r[a*hd+b] * x
				}
				blk[a*cols+j] = T(acc)
			}
		}
	}
}

// transformO permutes the query-head column blocks of o_proj by t.Heads and
// multiplies each by the transposed rotation of its group: O_h ← O_h·Rᵀ.
func transformO[T float32 | float64](data []T, lay *Layout, t *Transform) {
	hd, g := lay.HeadDim, lay.group()
	if t.Heads != nil {
		permuteCols(data, lay.Hidden, lay.Heads, hd, t.Heads)
	}
	if t.VO == nil {
		return
	}
	cols := lay.Heads * hd
	x := make([]float64, hd)
	for row := range lay.Hidden {
		for head := range lay.Heads {
			r := t.VO[head/g]
			seg := data[row*cols+head*hd : row*cols+(head+1)*hd]
			for b := range hd {
				x[b] = float64(seg[b])
			}
			for a := range hd {
				var acc float64
				for b, v := range x {
					acc += v * r[a*hd+b]
				}
				seg[a] = T(acc)
			}
		}
	}
}
