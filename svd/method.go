package svd

import (
	"fmt"
	"strings"
)

// Method selects the algorithm used by Factorize.
type Method int

const (
	// Exact computes the full thin SVD and truncates it. Its rank-r
	// approximation is optimal in the Frobenius norm.
	Exact Method = iota
	// Randomized computes an approximate truncated SVD with the randomized
	// range finder of Halko, Martinsson and Tropp.
	Randomized
)

// String returns the lower-case name of m, as accepted by ParseMethod.
func (m Method) String() string {
	switch m {
	case Exact:
		return "exact"
	case Randomized:
		return "randomized"
	default:
		return fmt.Sprintf("Method(%d)", int(m))
	}
}

// ParseMethod returns the Method named s ("exact" or "randomized", case
// insensitive).
func ParseMethod(s string) (Method, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "exact":
		return Exact, nil
	case "randomized":
		return Randomized, nil
	default:
		return 0, fmt.Errorf("svd: unknown method %q (want exact or randomized)", s)
	}
}

func (m Method) valid() bool { return m == Exact || m == Randomized }
