package svd

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// residualBlockRows is the number of rows of B·A formed at a time by
// RelativeError, bounding its temporary memory to residualBlockRows·n.
const residualBlockRows = 128

// RelativeError returns ‖a − B·A‖_F / ‖a‖_F for the factors f of a. For a
// zero matrix it returns 0 when the approximation is also zero and +Inf
// otherwise. It returns an error when the shapes of f do not match a.
func RelativeError(a mat.Matrix, f *Factors) (float64, error) {
	if a == nil || f == nil {
		return 0, errors.New("svd: nil matrix or factors")
	}
	m, n := a.Dims()
	if f.Rank > 0 {
		if f.B == nil || f.A == nil {
			return 0, fmt.Errorf("svd: rank-%d factors without B or A", f.Rank)
		}
		bm, br := f.B.Dims()
		ar, an := f.A.Dims()
		if bm != m || an != n || br != f.Rank || ar != f.Rank {
			return 0, fmt.Errorf("svd: factors %d×%d · %d×%d do not match rank %d and matrix %d×%d",
				bm, br, ar, an, f.Rank, m, n)
		}
	}
	d := denseOf(a)
	var norm, res float64
	var buf *mat.Dense
	if f.Rank > 0 {
		buf = mat.NewDense(min(residualBlockRows, m), n, nil)
	}
	for i0 := 0; i0 < m; i0 += residualBlockRows {
		h := min(residualBlockRows, m-i0)
		var prod *mat.Dense
		if f.Rank > 0 {
			prod = buf.Slice(0, h, 0, n).(*mat.Dense)
			prod.Mul(f.B.Slice(i0, i0+h, 0, f.Rank), f.A)
		}
		for i := range h {
			row := d.RawRowView(i0 + i)
			var approx []float64
			if prod != nil {
				approx = prod.RawRowView(i)
			}
			for j, v := range row {
				norm += v * v
				if approx != nil {
					v -= approx[j]
				}
				res += v * v
			}
		}
	}
	if norm == 0 {
		if res == 0 {
			return 0, nil
		}
		return math.Inf(1), nil
	}
	return math.Sqrt(res / norm), nil
}
