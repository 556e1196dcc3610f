package svd

// RankForEnergy returns the smallest k such that s[0]² + … + s[k-1]² is at
// least energy·total, where s holds singular values in non-increasing order
// and total is the squared Frobenius norm of the matrix they came from (at
// least the sum of all s[i]², and exactly that sum for a full SVD).
//
// It returns 0 when total or energy is not positive, len(s) when energy ≥ 1,
// and len(s) when s does not reach the target (which for a full SVD only
// happens through rounding when energy is very close to 1).
func RankForEnergy(s []float64, total, energy float64) int {
	k, _ := rankForEnergy(s, total, energy)
	return k
}

// rankForEnergy is RankForEnergy that also reports whether the target was
// reached within s.
func rankForEnergy(s []float64, total, energy float64) (k int, reached bool) {
	if total <= 0 || energy <= 0 {
		return 0, true
	}
	if energy >= 1 {
		return len(s), false
	}
	target := energy * total
	var kept float64
	for i, v := range s {
		kept += v * v
		if kept >= target {
			return i + 1, true
		}
	}
	return len(s), false
}

// DenseIsSmaller reports whether storing an m×n matrix densely takes no more
// elements than storing its rank-r factors, that is whether r·(m+n) ≥ m·n.
// When it returns true a low-rank representation saves nothing.
func DenseIsSmaller(m, n, r int) bool {
	return int64(r)*(int64(m)+int64(n)) >= int64(m)*int64(n)
}
