package svd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"
)

const (
	// fullRankTol bounds the relative reconstruction error at full rank: a
	// backward-stable SVD reconstructs to a few ulps times min(m, n).
	fullRankTol = 1e-12
	// eckartYoungTol bounds |‖M − B·A‖_F − sqrt(Σ_{i≥r} σ_i²)| / ‖M‖_F; both
	// sides come from backward-stable float64 computations.
	eckartYoungTol = 1e-12
	// randomizedSlack is the allowed relative excess of the randomized
	// Frobenius error over the exact one on decaying spectra.
	randomizedSlack = 0.01
	// energyTol absorbs rounding when checking the energy guarantee
	// ‖M − B·A‖_F² ≤ (1−E)·‖M‖_F².
	energyTol = 1e-12
	// normTol bounds the relative mismatch of balanced factor norms.
	normTol = 1e-12
)

var methods = []Method{Exact, Randomized}

func TestFullRankReconstruction(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, shape := range [][2]int{{37, 23}, {23, 37}, {1, 9}, {9, 1}, {16, 16}} {
		t.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(t *testing.T) {
			m, n := shape[0], shape[1]
			a := gaussian(rng, m, n)
			full := min(m, n)
			for _, method := range methods {
				for _, opt := range []Options{
					{Method: method, Rank: full},
					{Method: method, Rank: full + 5}, // clamped
					{Method: method, Energy: 1},
				} {
					name := fmt.Sprintf("%d×%d %+v", m, n, opt)
					f := mustFactorize(t, a, opt)
					checkShapes(t, f, m, n, full)
					if f.Method != Exact {
						t.Errorf("%s: method %v, want fallback to exact", name, f.Method)
					}
					if e := mustRelativeError(t, a, f); e > fullRankTol {
						t.Errorf("%s: relative error %v > %v", name, e, fullRankTol)
					}
					if e := naiveRelativeError(a, f); e > fullRankTol {
						t.Errorf("%s: naive relative error %v > %v", name, e, fullRankTol)
					}
				}
			}
		})
	}
}

func TestExactEckartYoung(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, shape := range [][2]int{{40, 25}, {25, 40}, {31, 30}} {
		t.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(t *testing.T) {
			m, n := shape[0], shape[1]
			a := gaussian(rng, m, n)
			ref := referenceValues(t, a)
			norm := mat.Norm(a, 2)
			for _, r := range []int{1, 5, 12, min(m, n) - 1} {
				f := mustFactorize(t, a, Options{Rank: r})
				checkShapes(t, f, m, n, r)
				got := mustRelativeError(t, a, f) * norm
				if want := tail(ref, r); math.Abs(got-want) > eckartYoungTol*norm {
					t.Errorf("%d×%d rank %d: error %v, want sqrt(Σ discarded σ²) = %v", m, n, r, got, want)
				}
				for i, s := range f.S {
					if math.Abs(s-ref[i]) > eckartYoungTol*ref[0] {
						t.Errorf("%d×%d rank %d: σ_%d = %v, reference %v", m, n, r, i, s, ref[i])
					}
				}
				if f.TotalEnergy <= 0 || math.Abs(f.TotalEnergy-norm*norm) > eckartYoungTol*norm*norm {
					t.Errorf("%d×%d: TotalEnergy %v, want %v", m, n, f.TotalEnergy, norm*norm)
				}
			}
		})
	}
}

func TestRandomizedNearOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name     string
		spectrum []float64
		rank     int
	}{
		{name: "geometric 0.9", spectrum: decaying(120, 0.9), rank: 10},
		{name: "geometric 0.95", spectrum: decaying(120, 0.95), rank: 30},
		{name: "power 1/(i+1)", spectrum: powerLaw(120, 1), rank: 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, shape := range [][2]int{{300, 120}, {120, 300}} {
				m, n := shape[0], shape[1]
				a := withSpectrum(rng, m, n, tc.spectrum)
				exact := mustFactorize(t, a, Options{Rank: tc.rank})
				rnd := mustFactorize(t, a, Options{Method: Randomized, Rank: tc.rank, Seed: 42})
				checkShapes(t, rnd, m, n, tc.rank)
				if rnd.Method != Randomized {
					t.Fatalf("%s %d×%d: method %v, want randomized", tc.name, m, n, rnd.Method)
				}
				eExact := mustRelativeError(t, a, exact)
				eRnd := mustRelativeError(t, a, rnd)
				t.Logf("%s %d×%d rank %d: exact %.6g randomized %.6g (ratio %.6f)", tc.name, m, n, tc.rank, eExact, eRnd, eRnd/eExact)
				if eRnd > (1+randomizedSlack)*eExact {
					t.Errorf("%s %d×%d rank %d: randomized error %v > (1+%v)·exact %v", tc.name, m, n, tc.rank, eRnd, randomizedSlack, eExact)
				}
				// The projected matrix's singular values never exceed the true ones.
				for i, s := range rnd.S {
					if s > exact.S[i]*(1+1e-12) {
						t.Errorf("%s %d×%d: randomized σ_%d = %v exceeds exact %v", tc.name, m, n, i, s, exact.S[i])
					}
				}
				// The kept energy accounts exactly for the residual.
				if got, want := eRnd*eRnd, 1-rnd.EnergyFraction(); math.Abs(got-want) > energyTol {
					t.Errorf("%s %d×%d: residual² %v, 1 − energy fraction %v", tc.name, m, n, got, want)
				}
			}
		})
	}
}

// powerLaw returns k singular values s_i = (i+1)^-alpha.
func powerLaw(k int, alpha float64) []float64 {
	s := make([]float64, k)
	for i := range s {
		s[i] = math.Pow(float64(i+1), -alpha)
	}
	return s
}

func TestRandomizedDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, shape := range [][2]int{{90, 60}, {60, 90}} {
		a := withSpectrum(rng, shape[0], shape[1], decaying(60, 0.9))
		for _, opt := range []Options{
			{Method: Randomized, Rank: 8, Seed: 1},
			{Method: Randomized, Energy: 0.9, Seed: 1},
		} {
			f1 := mustFactorize(t, a, opt)
			f2 := mustFactorize(t, a, opt)
			if !mat.Equal(f1.B, f2.B) || !mat.Equal(f1.A, f2.A) || fmt.Sprint(f1.S) != fmt.Sprint(f2.S) {
				t.Errorf("%v %+v: factors differ between runs with the same seed", shape, opt)
			}
			opt.Seed = 2
			f3 := mustFactorize(t, a, opt)
			if f3.Rank == f1.Rank && mat.Equal(f1.B, f3.B) {
				t.Errorf("%v %+v: seeds 1 and 2 gave identical factors", shape, opt)
			}
		}
	}
}

func TestEnergySelection(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, shape := range [][2]int{{150, 100}, {100, 150}} {
		t.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(t *testing.T) {
			m, n := shape[0], shape[1]
			a := withSpectrum(rng, m, n, decaying(100, 0.93))
			ref := referenceValues(t, a)
			total := mat.Norm(a, 2)
			total *= total
			for _, energy := range []float64{1e-3, 0.5, 0.9, 0.99, 0.999} {
				exactRank := RankForEnergy(ref, total, energy)
				for _, method := range methods {
					name := fmt.Sprintf("%d×%d %v E=%v", m, n, method, energy)
					f := mustFactorize(t, a, Options{Method: method, Energy: energy, Seed: 3})
					checkShapes(t, f, m, n, f.Rank)
					e := mustRelativeError(t, a, f)
					if e*e > 1-energy+energyTol {
						t.Errorf("%s: residual² %v exceeds 1−E = %v", name, e*e, 1-energy)
					}
					if f.EnergyFraction() < energy-energyTol {
						t.Errorf("%s: energy fraction %v < %v", name, f.EnergyFraction(), energy)
					}
					switch method {
					case Exact:
						if f.Rank != exactRank {
							t.Errorf("%s: rank %d, want smallest rank %d", name, f.Rank, exactRank)
						}
					case Randomized:
						// The sketch's values never exceed the true ones, so the
						// rank cannot be smaller; with oversampling and power
						// iterations it is at most slightly larger.
						if f.Rank < exactRank || f.Rank > exactRank+2 {
							t.Errorf("%s: rank %d, want within [%d, %d]", name, f.Rank, exactRank, exactRank+2)
						}
					}
				}
			}
		})
	}
}

func TestEnergyAdaptiveGrowth(t *testing.T) {
	// σ_i = 0.97^i needs rank ≈ 76 for E = 0.99, beyond the first two
	// candidate ranks (32 and 64) of the adaptive sketch but well below
	// min(m, n), so the randomized method must grow without falling back.
	rng := rand.New(rand.NewPCG(13, 14))
	a := withSpectrum(rng, 400, 300, decaying(300, 0.97))
	ref := referenceValues(t, a)
	total := mat.Norm(a, 2)
	total *= total
	const energy = 0.99
	want := RankForEnergy(ref, total, energy)
	if want <= 2*initialEnergyRank {
		t.Fatalf("test matrix needs rank %d, not beyond %d", want, 2*initialEnergyRank)
	}
	f := mustFactorize(t, a, Options{Method: Randomized, Energy: energy, Seed: 5})
	if f.Method != Randomized {
		t.Errorf("method %v, want randomized", f.Method)
	}
	if f.Rank < want || f.Rank > want+2 {
		t.Errorf("rank %d, want within [%d, %d]", f.Rank, want, want+2)
	}
	if e := mustRelativeError(t, a, f); e*e > 1-energy+energyTol {
		t.Errorf("residual² %v exceeds 1−E = %v", e*e, 1-energy)
	}
}

func TestZeroMatrix(t *testing.T) {
	a := mat.NewDense(6, 4, nil)
	for _, method := range methods {
		f := mustFactorize(t, a, Options{Method: method, Energy: 0.9})
		checkShapes(t, f, 6, 4, 0)
		if f.TotalEnergy != 0 || f.EnergyFraction() != 1 {
			t.Errorf("%v energy: total %v fraction %v, want 0 and 1", method, f.TotalEnergy, f.EnergyFraction())
		}
		if e := mustRelativeError(t, a, f); e != 0 {
			t.Errorf("%v energy: relative error %v, want 0", method, e)
		}
		f = mustFactorize(t, a, Options{Method: method, Rank: 2, Oversample: NoOversample})
		checkShapes(t, f, 6, 4, 2)
		if e := mustRelativeError(t, a, f); e != 0 {
			t.Errorf("%v rank 2: relative error %v, want 0", method, e)
		}
	}
}

func TestBalancedNorms(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for _, shape := range [][2]int{{80, 50}, {50, 80}} {
		t.Run(fmt.Sprintf("%dx%d", shape[0], shape[1]), func(t *testing.T) {
			m, n := shape[0], shape[1]
			a := withSpectrum(rng, m, n, decaying(50, 0.9))
			for _, method := range methods {
				f := mustFactorize(t, a, Options{Method: method, Rank: 12, Seed: 9})
				for i := range f.Rank {
					want := math.Sqrt(f.S[i])
					colB := mat.Norm(f.B.ColView(i), 2)
					rowA := mat.Norm(f.A.RowView(i), 2)
					if math.Abs(colB-want) > normTol*want || math.Abs(rowA-want) > normTol*want {
						t.Errorf("%d×%d %v: ‖B[:,%d]‖ = %v, ‖A[%d,:]‖ = %v, want sqrt(σ) = %v", m, n, method, i, colB, i, rowA, want)
					}
				}
				for i := 1; i < f.Rank; i++ {
					if f.S[i] > f.S[i-1] {
						t.Errorf("%d×%d %v: singular values not sorted: %v", m, n, method, f.S)
					}
				}
			}
		})
	}
}

func TestNonFiniteInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    float64
		want string
	}{
		{name: "NaN", v: math.NaN(), want: "(2, 1) is NaN"},
		{name: "+Inf", v: math.Inf(1), want: "(2, 1) is +Inf"},
		{name: "-Inf", v: math.Inf(-1), want: "(2, 1) is -Inf"},
		{name: "overflow", v: 1e300, want: "overflows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := mat.NewDense(4, 3, []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
			a.Set(2, 1, tc.v)
			for _, method := range methods {
				_, err := Factorize(a, Options{Method: method, Rank: 1})
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s %v: error %v, want one containing %q", tc.name, method, err, tc.want)
				}
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	a := mat.NewDense(3, 3, []float64{1, 0, 0, 0, 2, 0, 0, 0, 3})
	for _, tc := range []struct {
		name string
		opt  Options
	}{
		{name: "neither", opt: Options{}},
		{name: "both", opt: Options{Rank: 1, Energy: 0.5}},
		{name: "negative rank", opt: Options{Rank: -1}},
		{name: "energy above one", opt: Options{Energy: 1.5}},
		{name: "negative energy", opt: Options{Energy: -0.1}},
		{name: "NaN energy", opt: Options{Energy: math.NaN()}},
		{name: "unknown method", opt: Options{Method: Method(5), Rank: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Factorize(a, tc.opt); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		})
	}
	for _, tc := range []struct {
		name string
		a    mat.Matrix
	}{
		{name: "nil", a: nil},
		{name: "empty", a: &mat.Dense{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Factorize(tc.a, Options{Rank: 1}); err == nil {
				t.Errorf("%s matrix: no error", tc.name)
			}
		})
	}
}

func TestOptionDefaults(t *testing.T) {
	for _, tc := range []struct {
		opt          Options
		wantP, wantQ int
	}{
		{opt: Options{Rank: 1}, wantP: DefaultOversample, wantQ: DefaultPowerIters},
		{opt: Options{Rank: 1, Oversample: 4, PowerIters: 5}, wantP: 4, wantQ: 5},
		{opt: Options{Rank: 1, Oversample: NoOversample, PowerIters: NoPowerIters}, wantP: 0, wantQ: 0},
		{opt: Options{Rank: 1, Oversample: -7, PowerIters: -3}, wantP: 0, wantQ: 0},
	} {
		t.Run(fmt.Sprintf("%+v", tc.opt), func(t *testing.T) {
			t.Parallel()
			p, err := tc.opt.resolve()
			if err != nil {
				t.Fatalf("%+v: %v", tc.opt, err)
			}
			if p.oversample != tc.wantP || p.powerIters != tc.wantQ {
				t.Errorf("%+v: oversample %d power iterations %d, want %d and %d", tc.opt, p.oversample, p.powerIters, tc.wantP, tc.wantQ)
			}
		})
	}
}

func TestNonDenseInput(t *testing.T) {
	// A transposed view and a copy of it must give the same factors.
	rng := rand.New(rand.NewPCG(17, 18))
	d := withSpectrum(rng, 40, 70, decaying(40, 0.8))
	view := d.T()
	dense := mat.DenseCopyOf(view)
	for _, method := range methods {
		opt := Options{Method: method, Rank: 5, Seed: 4}
		fv := mustFactorize(t, view, opt)
		fd := mustFactorize(t, dense, opt)
		if !mat.Equal(fv.B, fd.B) || !mat.Equal(fv.A, fd.A) {
			t.Errorf("%v: factors of a transposed view differ from those of its copy", method)
		}
		checkShapes(t, fv, 70, 40, 5)
		if ev, ed := mustRelativeError(t, view, fv), mustRelativeError(t, dense, fd); ev != ed {
			t.Errorf("%v: relative error of view %v, of copy %v", method, ev, ed)
		}
	}
}

func TestRandomizedPowerIterationsHelp(t *testing.T) {
	// On a slowly decaying spectrum each extra power iteration must not
	// worsen the sketch, and even without power iterations the sketch must
	// beat the zero approximation (relative error 1).
	rng := rand.New(rand.NewPCG(19, 20))
	a := withSpectrum(rng, 200, 160, powerLaw(160, 0.5))
	var errs []float64
	for _, q := range []int{NoPowerIters, 1, 3} {
		f := mustFactorize(t, a, Options{Method: Randomized, Rank: 10, PowerIters: q, Seed: 6})
		errs = append(errs, mustRelativeError(t, a, f))
	}
	exact := mustRelativeError(t, a, mustFactorize(t, a, Options{Rank: 10}))
	t.Logf("errors q=0,1,3: %v; exact %v", errs, exact)
	for i := 1; i < len(errs); i++ {
		if errs[i] > errs[i-1] {
			t.Errorf("error grew with more power iterations: %v", errs)
		}
	}
	if errs[0] >= 1 || errs[len(errs)-1] < exact {
		t.Errorf("errors %v outside [exact %v, 1)", errs, exact)
	}
}

func TestRandomizedFallback(t *testing.T) {
	// A sketch of r+p columns that is not narrower than min(m, n) saves
	// nothing, so the exact method is used and its result returned.
	rng := rand.New(rand.NewPCG(21, 22))
	a := gaussian(rng, 37, 23)
	for _, tc := range []struct {
		opt  Options
		want Method
	}{
		{opt: Options{Method: Randomized, Rank: 13}, want: Exact},                     // 13+10 = 23
		{opt: Options{Method: Randomized, Rank: 12}, want: Randomized},                // 12+10 < 23
		{opt: Options{Method: Randomized, Rank: 20, Oversample: 2}, want: Randomized}, // 20+2 < 23
		{opt: Options{Method: Randomized, Energy: 0.5}, want: Exact},                  // 32+10 ≥ 23
	} {
		t.Run(fmt.Sprintf("%+v", tc.opt), func(t *testing.T) {
			f := mustFactorize(t, a, tc.opt)
			if f.Method != tc.want {
				t.Errorf("%+v: method %v, want %v", tc.opt, f.Method, tc.want)
			}
			if tc.want == Exact {
				e := mustFactorize(t, a, Options{Rank: f.Rank})
				if !mat.Equal(f.B, e.B) || !mat.Equal(f.A, e.A) {
					t.Errorf("%+v: fallback factors differ from the exact ones", tc.opt)
				}
			}
		})
	}
}
