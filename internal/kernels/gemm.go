package kernels

import "sync"

// parallelMinFlops is the problem size, in floating-point operations, below
// which Sgemm runs on the calling goroutine only: smaller products take under
// about 40 µs on one core, where waking further goroutines and repeating the
// packing of B per band gain little. Callers with many small products (one
// per attention head, say) should parallelise across them instead.
const parallelMinFlops = 1 << 23

// gemm is one validated Sgemm problem in stride form:
// op(A)(i, p) = a[i*rsa + p*csa] and op(B)(p, j) = b[p*rsb + j*csb].
type gemm struct {
	m, n, k     int
	alpha, beta float32
	a           []float32
	rsa, csa    int
	b           []float32
	rsb, csb    int
	c           []float32
	ldc         int
	kern        *microKernel
}

// run computes the product using at most threads goroutines.
func (g *gemm) run(threads int) {
	if g.m == 1 || g.n == 1 {
		g.vector()
		return
	}
	p := g.partition(threads)
	if p.bands == 1 {
		g.block(0, g.m, 0, g.n)
		return
	}
	// Copy the problem for the goroutines, so that the serial paths above
	// keep it on the stack.
	gp := new(gemm)
	*gp = *g
	var wg sync.WaitGroup
	for t := range p.bands {
		lo, hi := p.cut(t), p.cut(t+1)
		band := func() {
			if p.rows {
				gp.block(lo, hi, 0, gp.n)
			} else {
				gp.block(0, gp.m, lo, hi)
			}
		}
		if t == p.bands-1 {
			band() // the last band runs on the calling goroutine
		} else {
			wg.Go(band)
		}
	}
	wg.Wait()
}

// partition describes how C is split across goroutines: into bands of rows
// (or columns, when rows is false) made of whole register tiles.
type partition struct {
	rows  bool
	bands int // number of bands, one per goroutine
	units int // register tiles along the split dimension
	unit  int // rows (columns) per register tile
	dim   int // rows (columns) of C
}

// cut returns the first row (column) of band t; cut(bands) is the end of C.
func (p partition) cut(t int) int { return min(p.units*t/p.bands*p.unit, p.dim) }

// partition splits C into at most threads bands. Products under
// parallelMinFlops get a single band.
//
// C is split into rows when it is at least as tall as wide, into columns
// otherwise, because splitting the rows repeats the packing of B (k×n) in
// every band and splitting the columns repeats the reading of A (m×k). The
// other dimension is used instead when that leaves the busiest goroutine at
// least 1/16 fewer tiles to compute (for example C of 128×128 on two
// goroutines: 5½ row tiles of 12 round up to 6, while the 4 column tiles of
// 32 halve exactly).
func (g *gemm) partition(threads int) partition {
	if 2*float64(g.m)*float64(g.n)*float64(g.k) < parallelMinFlops {
		threads = 1
	}
	mr, nr := g.kern.mr, g.kern.nr
	rowUnits, colUnits := (g.m+mr-1)/mr, (g.n+nr-1)/nr
	threads = max(1, min(threads, max(rowUnits, colUnits)))
	rowCost := (rowUnits + threads - 1) / threads * colUnits
	colCost := (colUnits + threads - 1) / threads * rowUnits
	var rows bool
	if g.m >= g.n {
		rows = 16*colCost >= 15*rowCost
	} else {
		rows = 16*rowCost < 15*colCost
	}
	if rows {
		return partition{rows: true, bands: min(threads, rowUnits), units: rowUnits, unit: mr, dim: g.m}
	}
	return partition{rows: false, bands: min(threads, colUnits), units: colUnits, unit: nr, dim: g.n}
}

// block computes rows [i0, i1) and columns [j0, j1) of C with the
// Goto/BLIS loop nest: for each kc-deep slice of the product, the nr-column
// panels of B are packed (or, for short bands of contiguous rows, read in
// place), then every mc-row block of A is multiplied with every panel while it
// stays in L2, one mr×nr tile per micro-kernel call. A is read in place
// through its strides; only a last, partial mr-row panel is copied into a
// zero-padded buffer, as is a partial last panel of B.
func (g *gemm) block(i0, i1, j0, j1 int) {
	kr := g.kern
	mr, nr := kr.mr, kr.nr
	// Use equal k blocks of at most kr.kc rather than full blocks and a thin
	// remainder, which would run the micro-kernel at a poor ratio of
	// arithmetic to loads and stores of C.
	kBlocks := (g.k + kr.kc - 1) / kr.kc
	kc := (g.k + kBlocks - 1) / kBlocks
	nc := min(kr.nc, roundUp(j1-j0, nr))
	mc := min(kr.mc, roundUp(i1-i0, mr))
	directB := g.csb == 1 && (i1-i0+mr-1)/mr <= kr.directBMaxTiles

	bufB := getBuffer(kc * nc)
	defer bufB.release()
	bufA := getBuffer(mr * kc)
	defer bufA.release()
	pb, pa := bufB.s, bufA.s

	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		for pc := 0; pc < g.k; pc += kc {
			kb := min(kc, g.k-pc)
			bBlock := g.b[pc*g.rsb+jc*g.csb:]
			fullB := nb // columns of the block read in place
			if directB {
				fullB = nb - nb%nr
				if fullB < nb {
					packB(pb, bBlock[fullB:], g.rsb, g.csb, kb, nb-fullB, nr, kr.packT)
				}
			} else {
				fullB = 0
				packB(pb, bBlock, g.rsb, g.csb, kb, nb, nr, kr.packT)
			}
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			for ic := i0; ic < i1; ic += mc {
				mb := min(mc, i1-ic)
				aBlock := g.a[ic*g.rsa+pc*g.csa:]
				fullA := mb - mb%mr // rows of the block read in place
				if fullA < mb {
					packA(pa, aBlock[fullA*g.rsa:], g.rsa, g.csa, kb, mb-fullA, mr)
				}
				for jr := 0; jr < nb; jr += nr {
					nn := min(nr, nb-jr)
					var bp []float32
					ldb := nr
					if jr < fullB {
						bp, ldb = bBlock[jr:], g.rsb
					} else {
						bp = pb[(jr-fullB)*kb:]
					}
					cp := g.c[ic*g.ldc+jc+jr:]
					if fullA > 0 {
						kr.fn(kb, aBlock, g.rsa, g.csa, bp, ldb, cp, g.ldc, fullA, nn, g.alpha, beta)
					}
					if fullA < mb {
						kr.fn(kb, pa, 1, mr, bp, ldb, cp[fullA*g.ldc:], g.ldc, mb-fullA, nn, g.alpha, beta)
					}
				}
			}
		}
	}
}

// roundUp returns x rounded up to a multiple of m.
func roundUp(x, m int) int { return (x + m - 1) / m * m }
