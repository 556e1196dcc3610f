package distill

import (
	"fmt"
	"math"

	"github.com/vlora-convert/vlora-convert/formats"
)

// schedule returns the learning-rate multiplier at step s (0-based) of
// steps: a linear warm-up over warmup steps, times a decay from 1 to
// minRatio over the whole run along a cosine or a straight line.
func schedule(s, steps, warmup int, minRatio float64, decay Decay) float64 {
	x := float64(s) / float64(steps)
	g := 0.5 * (1 + math.Cos(math.Pi*x))
	if decay == DecayLinear {
		g = 1 - x
	}
	f := minRatio + (1-minRatio)*g
	if warmup > 0 {
		f *= math.Min(1, float64(s+1)/float64(warmup))
	}
	return f
}

// Decay is the shape of the learning-rate decay after the warm-up.
type Decay int

const (
	// DecayCosine follows half a cosine from the peak to the floor.
	DecayCosine Decay = iota
	// DecayLinear falls along a straight line from the peak to the floor,
	// spending more steps at middling rates and fewer near the peak.
	DecayLinear
)

// decayNames names each Decay, indexed by its value.
var decayNames = [...]string{DecayCosine: "cosine", DecayLinear: "linear"}

// String returns "cosine" or "linear".
func (d Decay) String() string {
	if d.valid() {
		return decayNames[d]
	}
	return fmt.Sprintf("Decay(%d)", int(d))
}

// valid reports whether d is one of the named decays.
func (d Decay) valid() bool { return d >= 0 && int(d) < len(decayNames) }

// ParseDecay returns the Decay named "cosine" or "linear".
func ParseDecay(name string) (Decay, error) {
	for d, n := range decayNames {
		if n == name {
			return Decay(d), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown learning-rate decay %q (want cosine or linear)", formats.ErrInvalid, name)
}
