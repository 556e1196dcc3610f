package vlora

import (
	"fmt"
	"sort"
	"strings"
)

// PlanGroup counts the 2-D tensors of the original that a file stores the
// same way: Family FamilyFactors for layer tensors (dense or low rank,
// with or without their compound's base), FamilyPassthrough for embeddings
// and head, FamilyBases for the compound bases.
type PlanGroup struct {
	Family string `json:"family"`
	// Kind is KindDense or KindLowRank (layer tensors), "base" or
	// KindDense (pass-through tensors).
	Kind string `json:"kind"`
	// Scheme is the storage: a quantization scheme or the float dtype.
	Scheme string `json:"scheme"`
	// Base reports whether the layer tensors add their compound's base.
	Base  bool `json:"base,omitempty"`
	Count int  `json:"count"`
	// MinRank and MaxRank bound the ranks of low-rank tensors.
	MinRank int `json:"min_rank,omitempty"`
	MaxRank int `json:"max_rank,omitempty"`
}

// String returns, e.g., "12 layer tensors low rank 3–29, int4/g32/full, no base".
func (g PlanGroup) String() string {
	var b strings.Builder
	switch g.Family {
	case FamilyFactors:
		fmt.Fprintf(&b, "%d layer tensors ", g.Count)
		if g.Kind == KindLowRank {
			if g.MinRank == g.MaxRank {
				fmt.Fprintf(&b, "low rank %d", g.MinRank)
			} else {
				fmt.Fprintf(&b, "low rank %d–%d", g.MinRank, g.MaxRank)
			}
		} else {
			b.WriteString("dense")
		}
		fmt.Fprintf(&b, ", %s", g.Scheme)
		if g.Base {
			b.WriteString(", plus the compound base")
		} else {
			b.WriteString(", no base")
		}
	case FamilyBases:
		fmt.Fprintf(&b, "%d compound bases, %s", g.Count, g.Scheme)
	default:
		fmt.Fprintf(&b, "%d pass-through tensors, %s", g.Count, g.Scheme)
	}
	return b.String()
}

// Plan returns how the file stores the original's 2-D tensors, grouped by
// family, kind, scheme and base, largest groups first within a family.
func (mf *Manifest) Plan() []PlanGroup {
	expect := mf.ExpectedTensors()
	scheme := func(name string) string {
		if s, ok := mf.schemeOf(name, expect[name]); ok {
			return s.String()
		}
		return strings.ToLower(mf.DType)
	}
	type key struct {
		fam, kind, scheme string
		base              bool
	}
	groups := map[key]*PlanGroup{}
	add := func(k key, rank int) {
		g := groups[k]
		if g == nil {
			g = &PlanGroup{Family: k.fam, Kind: k.kind, Scheme: k.scheme, Base: k.base, MinRank: rank, MaxRank: rank}
			groups[k] = g
		}
		g.Count++
		g.MinRank, g.MaxRank = min(g.MinRank, rank), max(g.MaxRank, rank)
	}
	shapes := map[string][]int{}
	for _, s := range mf.Suffixes {
		shapes[s.Name] = s.Shape
	}
	for _, inc := range mf.Increments {
		if len(shapes[inc.Suffix]) < 2 {
			continue
		}
		k := key{fam: FamilyFactors, kind: inc.Kind, base: mf.HasBase(inc.Suffix)}
		rank := 0
		if inc.Kind == KindDense {
			k.scheme = scheme(DeltaName(inc.Layer, inc.Suffix))
		} else {
			k.scheme, rank = scheme(LoraAName(inc.Layer, inc.Suffix)), inc.Rank
		}
		add(k, rank)
	}
	for c := range mf.Compounds {
		for _, s := range mf.Suffixes {
			if len(s.Shape) >= 2 && mf.HasBase(s.Name) {
				add(key{fam: FamilyBases, kind: "base", scheme: scheme(BaseName(c, s.Name))}, 0)
			}
		}
	}
	for _, p := range mf.Passthrough {
		if len(p.Shape) >= 2 {
			add(key{fam: FamilyPassthrough, kind: KindDense, scheme: scheme(p.Name)}, 0)
		}
	}
	out := make([]PlanGroup, 0, len(groups))
	for _, g := range groups {
		out = append(out, *g)
	}
	order := map[string]int{FamilyFactors: 0, FamilyBases: 1, FamilyPassthrough: 2}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Family != b.Family {
			return order[a.Family] < order[b.Family]
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return fmt.Sprint(a) < fmt.Sprint(b)
	})
	return out
}

// RankRange returns the smallest and largest rank of the low-rank
// increments (0, 0 without any).
func (mf *Manifest) RankRange() (lo, hi int) {
	for _, inc := range mf.Increments {
		if inc.Kind != KindLowRank {
			continue
		}
		if lo == 0 || inc.Rank < lo {
			lo = inc.Rank
		}
		hi = max(hi, inc.Rank)
	}
	return lo, hi
}
