package svd_test

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/svd"
)

// Factorize a matrix of rank 1 plus a small perturbation: rank 1 keeps
// almost all of its energy, and B·A is balanced (both factors carry √σ).
func ExampleFactorize() {
	m := mat.NewDense(3, 4, []float64{
		1, 2, 3, 4,
		2, 4, 6, 8,
		3, 6, 9, 12.01,
	})
	f, err := svd.Factorize(m, svd.Options{Rank: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	br, bc := f.B.Dims()
	ar, ac := f.A.Dims()
	fmt.Printf("rank %d, B %d×%d, A %d×%d, energy kept %.6f\n", f.Rank, br, bc, ar, ac, f.EnergyFraction())
	// The smallest rank that keeps 99% of the energy.
	g, err := svd.Factorize(m, svd.Options{Energy: 0.99})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("rank for 99% energy:", g.Rank)
	// Output:
	// rank 1, B 3×1, A 1×4, energy kept 1.000000
	// rank for 99% energy: 1
}
