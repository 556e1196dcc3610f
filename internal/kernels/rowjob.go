package kernels

import (
	"fmt"
	"runtime"
)

// RowProduct is one product of MulStoredRow: y = x·Wᵀ + Beta·y for the
// one row X (W.Cols values) into Y (W.Rows values).
type RowProduct struct {
	X    []float32
	W    *Stored
	Y    []float32
	Beta float32
}

// MulStoredRow computes the one-row products ps as one job: their rows are
// split into bands of about equal stored bytes across up to o.Threads
// goroutines (GOMAXPROCS when 0), so that a step's products that do not
// depend on one another (the query, key and value projections, or a
// VLoRA layer's base and its first factor) cost one hand-off between
// threads instead of one each, and products that share an input row share
// its quantization to int8. Every output element is computed by the same
// kernel, on the same values, as MulStored(1, …) computes it, and so is
// bit for bit the same. The products' outputs must not overlap one another
// or any input. It panics when a matrix fails Check or a slice is too
// short.
func (o Options) MulStoredRow(ps []RowProduct) {
	threads := o.Threads
	if threads < 1 {
		threads = runtime.GOMAXPROCS(0)
	}
	jobs := make([]rowJob, 0, len(ps))
	var total int64
	rows := 0
	for _, p := range ps {
		w := p.W
		if err := w.Check(); err != nil {
			panic(err)
		}
		if len(p.X) < w.Cols || len(p.Y) < w.Rows {
			panic(fmt.Sprintf("kernels: MulStoredRow of a %d × %d matrix with %d inputs and %d outputs", w.Rows, w.Cols, len(p.X), len(p.Y)))
		}
		if w.Rows == 0 {
			continue
		}
		if w.Format == F32 || w.Cols == 0 {
			// No stored kernel: computed here, as MulStored does.
			o.MulStored(1, p.X, w.Cols, w, p.Y, w.Rows, p.Beta)
			continue
		}
		jobs = append(jobs, rowJob{RowProduct: p, bytes: w.Bytes()})
		total += w.Bytes()
		rows += w.Rows
	}
	if len(jobs) == 0 {
		return
	}
	for i := range jobs {
		jobs[i].prepare(jobs[:i])
	}
	// The thresholds of MulStored: a band is at least 64 rows and 512 KiB.
	bands := min(threads, max(1, rows/64), max(1, int(total>>19)))
	inBands(bands, bands, func(b0, b1 int) {
		for b := b0; b < b1; b++ {
			lo, hi := total*int64(b)/int64(bands), total*int64(b+1)/int64(bands)
			var start int64
			for i := range jobs {
				j := &jobs[i]
				j.run(j.rowAt(lo-start), j.rowAt(hi-start))
				start += j.bytes
			}
		}
	})
	for i := range jobs {
		jobs[i].finish()
	}
}

// rowJob is a product of MulStoredRow with its prepared input.
type rowJob struct {
	RowProduct
	bytes int64
	kind  int // rowQ8, rowBF16 or rowGeneric
	q8    *q8Scratch
	own   bool // q8 is this job's (not shared with an earlier one)
	block bool // q8 holds the input in block order
	bf    *bf16Scratch
	out   []float32
}

const (
	rowGeneric = iota
	rowQ8
	rowBF16
)

// rowAt returns the first row of the job at or after byte b of its matrix
// (clamped to [0, Rows]): bands split the jobs' bytes, and a row belongs to
// the band its first byte falls in.
func (j *rowJob) rowAt(b int64) int {
	if b <= 0 {
		return 0
	}
	if b >= j.bytes {
		return j.W.Rows
	}
	r := int64(j.W.Rows)
	return int((b*r + j.bytes - 1) / j.bytes)
}

// prepare quantizes or reorders the job's input as its kernel needs,
// taking the quantized input of an earlier job with the same input row and
// quantization.
func (j *rowJob) prepare(earlier []rowJob) {
	w := j.W
	j.out = j.Y[:w.Rows]
	switch {
	case w.q8Path(1):
		j.kind = rowQ8
		for i := range earlier {
			e := &earlier[i]
			if e.kind == rowQ8 && &e.X[0] == &j.X[0] && e.W.Cols == w.Cols && e.W.group() == w.group() {
				j.q8, j.block = e.q8, e.block
				break
			}
		}
		if j.q8 == nil {
			j.q8, _ = q8Pool.Get().(*q8Scratch)
			if j.q8 == nil {
				j.q8 = &q8Scratch{}
			}
			j.own = true
			j.block = j.q8.quantize(j.X, w)
		}
		if j.Beta != 0 {
			if j.own && cap(j.q8.out) >= w.Rows {
				j.out = j.q8.out[:w.Rows]
			} else {
				j.out = make([]float32, w.Rows)
				if j.own {
					j.q8.out = j.out
				}
			}
		}
	case w.bf16Pairs(1):
		j.kind = rowBF16
		j.bf, _ = bf16Pool.Get().(*bf16Scratch)
		if j.bf == nil {
			j.bf = &bf16Scratch{}
		}
		n := w.Cols &^ 31
		if cap(j.bf.x) < n {
			j.bf.x = make([]float32, n)
		}
		pairOrder(j.bf.x[:n], j.X[:n])
		if j.Beta != 0 {
			if cap(j.bf.out) < w.Rows {
				j.bf.out = make([]float32, w.Rows)
			}
			j.out = j.bf.out[:w.Rows]
		}
	}
}

// run computes rows r0 … r1−1 of the job.
func (j *rowJob) run(r0, r1 int) {
	if r1 <= r0 {
		return
	}
	switch j.kind {
	case rowQ8:
		j.q8.rows(j.W, j.block, j.out, r0, r1)
	case rowBF16:
		bf16PairBand(j.W, j.bf.x[:j.W.Cols&^31], j.X, j.out, r0, r1)
	default:
		mulStoredRows(1, j.X, j.W.Cols, j.W, j.Y, j.W.Rows, j.Beta, r0, r1)
	}
}

// finish adds beta·y to a product computed into scratch and returns the
// scratch buffers.
func (j *rowJob) finish() {
	if j.kind != rowGeneric && j.Beta != 0 {
		for r, v := range j.out {
			j.Y[r] = v + j.Beta*j.Y[r]
		}
	}
	if j.own {
		q8Pool.Put(j.q8)
	}
	if j.bf != nil {
		bf16Pool.Put(j.bf)
	}
}
