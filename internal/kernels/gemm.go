package kernels

import "sync"

// parallelMinFlops is the problem size, in floating-point operations, below
// which Sgemm runs on the calling goroutine only: for smaller products the
// cost of starting goroutines exceeds the gain.
const parallelMinFlops = 1 << 21

// packAMinTiles is the number of nr-wide column tiles a block of A must be
// multiplied with before packing it pays off; below it the micro-kernel reads
// A in place through its strides.
const packAMinTiles = 4

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

// run computes the product using at most threads goroutines, splitting C into
// horizontal (or vertical) bands aligned to the register tile.
func (g *gemm) run(threads int) {
	if threads > 1 && 2*float64(g.m)*float64(g.n)*float64(g.k) < parallelMinFlops {
		threads = 1
	}
	// Splitting the rows of C repeats the packing of B in every band and
	// splitting the columns repeats the packing of A; split the dimension
	// that repeats less.
	splitRows := g.m >= g.n
	dim, unit := g.n, g.kern.nr
	if splitRows {
		dim, unit = g.m, g.kern.mr
	}
	units := (dim + unit - 1) / unit
	threads = min(threads, units)
	if threads <= 1 {
		g.block(0, g.m, 0, g.n)
		return
	}
	var wg sync.WaitGroup
	for t := range threads {
		lo := min(units*t/threads*unit, dim)
		hi := min(units*(t+1)/threads*unit, dim)
		band := func() {
			if splitRows {
				g.block(lo, hi, 0, g.n)
			} else {
				g.block(0, g.m, lo, hi)
			}
		}
		if t == threads-1 {
			band()
		} else {
			wg.Go(band)
		}
	}
	wg.Wait()
}

// block computes rows [i0, i1) and columns [j0, j1) of C with the
// Goto/BLIS loop nest: panels of B (kc×nc) are packed once and reused for
// every mc-row block of A, and each micro-kernel call updates one mr×nr tile.
func (g *gemm) block(i0, i1, j0, j1 int) {
	kr := g.kern
	mr, nr := kr.mr, kr.nr
	kc := min(kr.kc, g.k)
	nc := min(kr.nc, roundUp(j1-j0, nr))
	mc := min(kr.mc, roundUp(i1-i0, mr))

	bufB := getBuffer(kc * nc)
	defer bufB.release()
	bufA := getBuffer(mc * kc)
	defer bufA.release()
	pb, pa := bufB.s, bufA.s

	for jc := j0; jc < j1; jc += nc {
		nb := min(nc, j1-jc)
		tiles := (nb + nr - 1) / nr
		for pc := 0; pc < g.k; pc += kc {
			kb := min(kc, g.k-pc)
			packB(pb, g.b[pc*g.rsb+jc*g.csb:], g.rsb, g.csb, kb, nb, nr, g.alpha)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			for ic := i0; ic < i1; ic += mc {
				mb := min(mc, i1-ic)
				aBlock := g.a[ic*g.rsa+pc*g.csa:]
				packed := tiles >= packAMinTiles
				full := mb // rows of the block read in place
				if packed {
					packA(pa, aBlock, g.rsa, g.csa, kb, mb, mr)
				} else if mb%mr != 0 {
					// The last, partial row panel is padded with zeros so
					// that the micro-kernel may read all mr rows.
					full = mb - mb%mr
					packA(pa, aBlock[full*g.rsa:], g.rsa, g.csa, kb, mb-full, mr)
				}
				for jr := 0; jr < nb; jr += nr {
					nn := min(nr, nb-jr)
					bp := pb[jr*kb:]
					for ir := 0; ir < mb; ir += mr {
						mm := min(mr, mb-ir)
						cp := g.c[(ic+ir)*g.ldc+jc+jr:]
						switch {
						case packed:
							kr.fn(kb, pa[ir*kb:], 1, mr, bp, cp, g.ldc, mm, nn, beta)
						case ir < full:
							kr.fn(kb, aBlock[ir*g.rsa:], g.rsa, g.csa, bp, cp, g.ldc, mm, nn, beta)
						default:
							kr.fn(kb, pa, 1, mr, bp, cp, g.ldc, mm, nn, beta)
						}
					}
				}
			}
		}
	}
}

// roundUp returns x rounded up to a multiple of m.
func roundUp(x, m int) int { return (x + m - 1) / m * m }
