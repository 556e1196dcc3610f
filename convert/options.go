// Package convert runs the compression pipeline: it reads a dense Hugging
// Face checkpoint lazily, finds its layer stack, cuts it into compounds,
// factorizes each layer's difference from its compound base by truncated SVD
// and writes one self-describing VLoRA file.
package convert

import (
	"fmt"

	"gonum.org/v1/gonum/mat"

	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/stage"
	"github.com/vlora-convert/vlora-convert/svd"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// Version is the tool version recorded in every manifest.
const Version = "0.1.0"

// Defaults taken by the zero values of Options.
const (
	// DefaultCompoundSize is K when Options.CompoundSize is zero.
	DefaultCompoundSize = 8
	// DefaultRank is r when neither Options.Rank nor Options.Energy is set.
	DefaultRank = 32
)

// Options configures Compress. The zero value of every field selects the
// documented default, so Options{} is K=8, rank 32, base "first", exact SVD
// and F32.
type Options struct {
	// CompoundSize is K, the number of consecutive layers per compound
	// (default DefaultCompoundSize).
	CompoundSize int
	// Rank is the fixed increment rank r (clamped to each matrix's smaller
	// dimension). At most one of Rank and Energy is set; when neither is,
	// the rank is DefaultRank.
	Rank int
	// Energy, in (0, 1], picks per increment the smallest rank keeping that
	// fraction of its squared singular values; 1 stores increments exactly.
	Energy float64
	// Base chooses each compound's base (default vlora.BaseFirst).
	Base vlora.BaseMode
	// SuffixBases overrides Base for individual layer suffixes.
	SuffixBases map[string]vlora.BaseMode
	// Ranks, when set, fixes the increment of individual layer tensors,
	// keyed by original tensor name: a rank, or DenseIncrement. Tensors
	// not in the map use Rank or Energy.
	Ranks map[string]int
	// Grams, when set, holds for layer tensors (keyed by original name) the
	// Gram matrix XᵀX of their input activations; those increments are
	// truncated in the whitened space (svd.Whitened) instead of by the plain
	// SVD. Only the exact method is used for them.
	Grams map[string]*mat.SymDense
	// LossWeights, when set, multiplies the relative truncation loss of the
	// named layer tensors in PlanBudget (names missing from it weigh 1), for
	// example by each tensor's measured effect on the model's output
	// (calib.Sensitivity), so that ranks go where their error costs most.
	// Compress itself ignores it.
	LossWeights map[string]float64
	// Align re-expresses every layer of a compound, before the differences
	// from its base are taken, in the coordinates that bring it closest to
	// the compound mean (package align): an exact transform, so the stored
	// model computes the original's function. Llama-family checkpoints
	// only; others wrap align.ErrUnsupported.
	Align bool
	// Alignment, when set with Align, is the alignment to use (as Align
	// returns it for the same compound size) instead of computing it.
	// Grams, when set, must be of the aligned model.
	Alignment *align.Alignment
	// SVD is the factorization method (default svd.Exact); Seed, Oversample
	// and PowerIters configure the randomized one, with svd.Options'
	// conventions (zero: svd.DefaultOversample and svd.DefaultPowerIters,
	// negative: none).
	SVD        svd.Method
	Seed       uint64
	Oversample int
	PowerIters int
	// DType is the stored element type: F32 (also selected by the zero
	// value), F16 or BF16.
	DType formats.DType
	// Workers is the number of tensors factorized in parallel; 0 means
	// GOMAXPROCS.
	Workers int
	// KeepModel makes Compress also return the compressed model in memory
	// (Result.Model), ready for the next stage without reading the file.
	KeepModel bool
	// Progress, when set, is called after each finished tensor with Stage
	// stage.Compress and Item naming the tensor. It is called from one
	// goroutine at a time.
	Progress stage.ProgressFunc
}

// params holds Options with every default resolved and validated.
type params Options

// DenseIncrement in Options.Ranks stores an increment dense.
const DenseIncrement = -1

// resolve validates o and returns it with defaults applied. Errors wrap
// formats.ErrInvalid.
func (o Options) resolve() (params, error) {
	p := params(o)
	if p.CompoundSize == 0 {
		p.CompoundSize = DefaultCompoundSize
	}
	if p.Rank == 0 && p.Energy == 0 {
		p.Rank = DefaultRank
	}
	if p.Base == "" {
		p.Base = vlora.BaseFirst
	}
	if p.DType == 0 {
		p.DType = formats.F32
	}
	if p.CompoundSize < 1 {
		return p, fmt.Errorf("%w: compound size %d must be at least 1", formats.ErrInvalid, p.CompoundSize)
	}
	if p.Rank > 0 && p.Energy > 0 {
		return p, fmt.Errorf("%w: set at most one of rank and energy", formats.ErrInvalid)
	}
	if p.Rank < 0 {
		return p, fmt.Errorf("%w: rank %d must be positive", formats.ErrInvalid, p.Rank)
	}
	if p.Energy < 0 || p.Energy > 1 {
		return p, fmt.Errorf("%w: energy %v must be in (0, 1]", formats.ErrInvalid, p.Energy)
	}
	if _, err := vlora.ParseBaseMode(string(p.Base)); err != nil {
		return p, fmt.Errorf("%w: %v", formats.ErrInvalid, err)
	}
	for s, b := range p.SuffixBases {
		if _, err := vlora.ParseBaseMode(string(b)); err != nil {
			return p, fmt.Errorf("%w: suffix %s: %v", formats.ErrInvalid, s, err)
		}
	}
	if p.Alignment != nil && !p.Align {
		return p, fmt.Errorf("%w: an alignment is given but Align is not set", formats.ErrInvalid)
	}
	switch p.DType {
	case formats.F32, formats.F16, formats.BF16:
	default:
		return p, fmt.Errorf("%w: output dtype %s (want F32, F16 or BF16)", formats.ErrInvalid, p.DType)
	}
	return p, nil
}
