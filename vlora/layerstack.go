package vlora

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// TensorShape is the part of a tensor's description the layer-stack search
// needs.
type TensorShape struct {
	Shape []int
	DType string
}

// Stack is a repeated family of tensors named prefix.{i}.suffix for layers
// i = 0 … NumLayers-1, every layer holding the same suffixes with the same
// shapes.
type Stack struct {
	// Prefix includes the trailing dot, e.g. "model.layers.".
	Prefix    string
	NumLayers int
	// Suffixes are sorted; each layer holds exactly these.
	Suffixes []string
	// Shapes and DTypes are keyed by suffix.
	Shapes map[string][]int
	DTypes map[string]string
}

// Name returns the full tensor name of suffix in layer l.
func (s *Stack) Name(l int, suffix string) string {
	return s.Prefix + strconv.Itoa(l) + "." + suffix
}

// Split reports whether name belongs to the stack and, if so, its layer and
// suffix.
func (s *Stack) Split(name string) (layer int, suffix string, ok bool) {
	rest, found := strings.CutPrefix(name, s.Prefix)
	if !found {
		return 0, "", false
	}
	idx, suf, found := strings.Cut(rest, ".")
	if !found {
		return 0, "", false
	}
	l, err := strconv.Atoi(idx)
	if err != nil || l < 0 || l >= s.NumLayers || strconv.Itoa(l) != idx {
		return 0, "", false
	}
	if _, ok := s.Shapes[suf]; !ok {
		return 0, "", false
	}
	return l, suf, true
}

// Params returns the number of elements in one layer.
func (s *Stack) Params() int {
	n := 0
	for _, suf := range s.Suffixes {
		n += numel(s.Shapes[suf])
	}
	return n
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// DetectStack finds the largest family of tensors named prefix.{i}.suffix
// among names, where {i} is the first all-digit component of the name, and
// checks that every layer 0 … L-1 is present with the same suffixes, shapes
// and dtypes. Tensors outside the family are left to the caller (they pass
// through dense). info returns the shape and dtype of a name.
func DetectStack(names []string, info func(name string) TensorShape) (*Stack, error) {
	families := stackFamilies(names)
	if len(families) == 0 {
		return nil, fmt.Errorf("no repeated layer stack (no tensor is named prefix.{i}.suffix)")
	}
	best := ""
	for p, m := range families {
		if best == "" || len(m) > len(families[best]) || (len(m) == len(families[best]) && p < best) {
			best = p
		}
	}
	layers := map[int]map[string]string{}
	maxL := -1
	for _, m := range families[best] {
		if layers[m.layer] == nil {
			layers[m.layer] = map[string]string{}
		}
		layers[m.layer][m.suffix] = m.name
		maxL = max(maxL, m.layer)
	}
	if len(layers) < 2 {
		return nil, fmt.Errorf("layer stack %q has only %d layer(s); nothing to compress", best, len(layers))
	}
	st := &Stack{Prefix: best, NumLayers: maxL + 1, Shapes: map[string][]int{}, DTypes: map[string]string{}}
	// The union of suffixes over all layers: a suffix absent from one layer is
	// a missing tensor, reported by name.
	all := map[string]bool{}
	for _, l := range layers {
		for s := range l {
			all[s] = true
		}
	}
	for s := range all {
		st.Suffixes = append(st.Suffixes, s)
	}
	sort.Strings(st.Suffixes)
	for l := 0; l <= maxL; l++ {
		if layers[l] == nil {
			return nil, fmt.Errorf("layer stack %q: layer %d is missing (layers run to %d)", best, l, maxL)
		}
	}
	if err := st.checkLayers(layers, info); err != nil {
		return nil, err
	}
	return st, nil
}

// stackMember is one tensor of a candidate layer stack.
type stackMember struct {
	layer  int
	suffix string
	name   string
}

// stackFamilies groups names of the form prefix.{i}.suffix by prefix, {i}
// being the first all-digit component.
func stackFamilies(names []string) map[string][]stackMember {
	families := map[string][]stackMember{}
	for _, n := range names {
		parts := strings.Split(n, ".")
		for i := 1; i < len(parts)-1; i++ {
			if !isIndex(parts[i]) {
				continue
			}
			l, _ := strconv.Atoi(parts[i])
			prefix := strings.Join(parts[:i], ".") + "."
			families[prefix] = append(families[prefix], stackMember{l, strings.Join(parts[i+1:], "."), n})
			break
		}
	}
	return families
}

// checkLayers checks that every layer holds every suffix with the same shape
// and dtype, and records them in st.
func (st *Stack) checkLayers(layers map[int]map[string]string, info func(name string) TensorShape) error {
	for _, s := range st.Suffixes {
		ref := -1
		for l := 0; l < st.NumLayers; l++ {
			n, ok := layers[l][s]
			if !ok {
				return fmt.Errorf("layer %d is missing tensor %s (present in other layers)", l, st.Name(l, s))
			}
			ti := info(n)
			if ref < 0 {
				st.Shapes[s] = ti.Shape
				st.DTypes[s] = ti.DType
				ref = l
				continue
			}
			if !slices.Equal(ti.Shape, st.Shapes[s]) {
				return fmt.Errorf("tensor %s has shape %v but %s has %v", n, ti.Shape, st.Name(ref, s), st.Shapes[s])
			}
			if ti.DType != st.DTypes[s] {
				return fmt.Errorf("tensor %s has dtype %s but %s has %s", n, ti.DType, st.Name(ref, s), st.DTypes[s])
			}
		}
	}
	return nil
}

func isIndex(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// NumElements returns the product of shape (1 for a scalar).
func NumElements(shape []int) int { return numel(shape) }
