package kernels

// packA copies the mb×kb block Ã(i, p) = a[i*rsa + p*csa] into dst as
// consecutive mr-row panels: element (i, p) of panel q = i/mr is stored at
// dst[q*mr*kb + p*mr + i%mr]. Rows of the last panel beyond mb are zero.
func packA(dst, a []float32, rsa, csa, kb, mb, mr int) {
	for i0 := 0; i0 < mb; i0 += mr {
		rows := min(mr, mb-i0)
		panel := dst[i0*kb : i0*kb+mr*kb]
		src := a[i0*rsa:]
		if csa == 1 {
			// Rows are contiguous: read each row once, write with stride mr.
			for i := range rows {
				row := src[i*rsa : i*rsa+kb]
				for p, v := range row {
					panel[p*mr+i] = v
				}
			}
		} else {
			// Columns are contiguous (rsa == 1) or both strided.
			for p := range kb {
				out := panel[p*mr : p*mr+rows]
				col := src[p*csa:]
				if rsa == 1 {
					copy(out, col[:rows])
				} else {
					for i := range out {
						out[i] = col[i*rsa]
					}
				}
			}
		}
		if rows < mr {
			for p := range kb {
				clear(panel[p*mr+rows : p*mr+mr])
			}
		}
	}
}

// packB copies the kb×nb block B̃(p, j) = b[p*rsb + j*csb], where rsb or
// csb is 1, into dst as consecutive nr-column panels: element (p, j) of panel
// q = j/nr is stored at dst[q*nr*kb + p*nr + j%nr]. Columns of the last panel
// beyond nb are zero. packT, if not nil, packs the panels of a transposed B
// (rsb == 1) in place of packBT.
func packB(dst, b []float32, rsb, csb, kb, nb, nr int, packT packTFunc) {
	for j0 := 0; j0 < nb; j0 += nr {
		cols := min(nr, nb-j0)
		panel := dst[j0*kb : j0*kb+nr*kb]
		switch {
		case csb == 1:
			// Rows of B are contiguous.
			src := b[j0:]
			for p := range kb {
				copy(panel[p*nr:p*nr+cols], src[p*rsb:p*rsb+cols])
				clear(panel[p*nr+cols : p*nr+nr])
			}
		case packT != nil:
			packT(panel, b[j0*csb:], csb, kb, cols)
		default:
			packBT(panel, b[j0*csb:], csb, kb, cols, nr)
		}
	}
}

// packBT packs one nr-column panel of a B stored transposed: for p < kb and
// j < nr, dst[p*nr + j] = b[j*ldb + p] when j < cols, else 0.
func packBT(dst, b []float32, ldb, kb, cols, nr int) {
	dst = dst[:kb*nr]
	for j := range cols {
		col := b[j*ldb : j*ldb+kb]
		for p, v := range col {
			dst[p*nr+j] = v
		}
	}
	if cols < nr {
		for p := range kb {
			clear(dst[p*nr+cols : p*nr+nr])
		}
	}
}

// packTFunc packs one panel of a B stored transposed: for p < kb and j < nr,
// dst[p*nr + j] = b[j*ldb + p] when j < cols, else 0; 1 ≤ cols ≤ nr.
type packTFunc func(dst, b []float32, ldb, kb, cols int)
