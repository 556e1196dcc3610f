// Package svd computes truncated singular value decompositions of float64
// matrices and returns them as balanced low-rank factors.
//
// A matrix M (m×n) is approximated by the product B·A of
//
//	B = U_r·√Σ_r  (m×r)
//	A = √Σ_r·V_rᵀ (r×n)
//
// where U_r, Σ_r and V_r hold the r leading singular triplets. Splitting √Σ
// evenly between the two factors gives them equal scale: column i of B and
// row i of A both have Euclidean norm √σ_i.
//
// Two methods are available. Exact computes the thin SVD with LAPACK's
// Dgesvd (via gonum) and truncates it; by the Eckart–Young theorem its rank-r
// approximation is optimal in the Frobenius norm. Randomized uses the
// randomized range finder of Halko, Martinsson and Tropp (2011): a Gaussian
// sketch with oversampling, a few power iterations with re-orthonormalisation
// after every product, and an exact SVD of the small projected matrix. It is
// much cheaper when r is small compared with min(m, n) and, for matrices
// whose singular values decay, nearly as accurate.
//
// The rank is either fixed or chosen from an energy target E ∈ (0, 1]: the
// smallest r keeping at least the fraction E of ‖M‖_F² = Σσ_i².
package svd
