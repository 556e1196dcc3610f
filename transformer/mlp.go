package transformer

// mlpActivate turns the pre-activation buffer gu (n rows of mp.width()) into
// act (n rows of the intermediate size). A gated MLP holds the gate in the
// first half of each gu row and the up projection in the second half and
// computes act = f(gate)·up; a dense MLP computes act = f(gu). Biases of the
// first projection(s) are added to gu in place first, so that gu keeps the
// exact pre-activation values for the backward pass.
func mlpActivate(mp *mlp, workers, n int, gu, act []float32) {
	I := mp.up.out
	W := mp.width()
	forChunks(workers, n, 64, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			row := gu[i*W : i*W+W]
			a := act[i*I : i*I+I]
			if mp.gated {
				g, u := row[:I], row[I:2*I]
				if mp.gate.b != nil {
					addTo(g, mp.gate.b.Data)
				}
				if mp.up.b != nil {
					addTo(u, mp.up.b.Data)
				}
				if mp.act == SiLU {
					siluMul(g, u, a)
				} else {
					for j, x := range g {
						a[j] = actValue(mp.act, x) * u[j]
					}
				}
				continue
			}
			if mp.up.b != nil {
				addTo(row, mp.up.b.Data)
			}
			switch mp.act {
			case GELUTanh:
				for j, x := range row {
					a[j] = 0.5 * x * (1 + tanhf(geluC*(x+geluA*x*x*x)))
				}
			default:
				for j, x := range row {
					a[j] = actValue(mp.act, x)
				}
			}
		}
	})
}

// mlpActivateBackward maps dact onto the gradient with respect to the
// pre-activation buffer, dgu (laid out like gu).
func mlpActivateBackward(mp *mlp, workers, n int, gu, dact, dgu []float32) {
	I := mp.up.out
	W := mp.width()
	forChunks(workers, n, 64, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			row := gu[i*W : i*W+W]
			drow := dgu[i*W : i*W+W]
			da := dact[i*I : i*I+I]
			if mp.gated {
				g, u := row[:I], row[I:2*I]
				dg, du := drow[:I], drow[I:2*I]
				if mp.act == SiLU {
					siluMulGrad(g, u, da, dg, du)
					continue
				}
				for j, x := range g {
					f, df := actValueGrad(mp.act, x)
					dg[j] = da[j] * u[j] * df
					du[j] = da[j] * f
				}
				continue
			}
			for j, x := range row {
				_, df := actValueGrad(mp.act, x)
				drow[j] = da[j] * df
			}
		}
	})
}

// addTo adds v to x elementwise.
func addTo(x, v []float32) {
	v = v[:len(x)]
	for j := range x {
		x[j] += v[j]
	}
}
