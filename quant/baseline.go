package quant

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
)

// Weight is one named row-major tensor of a checkpoint.
type Weight struct {
	Name  string
	Shape []int
	Data  []float32
}

// Footprint is the storage of a set of weights: Params values costing Bits
// in all.
type Footprint struct {
	Params int64
	Bits   int64
}

// BitsPerWeight returns Bits/Params (0 for no parameters).
func (f Footprint) BitsPerWeight() float64 {
	if f.Params == 0 {
		return 0
	}
	return float64(f.Bits) / float64(f.Params)
}

// Measure returns the footprint of ws when every 2-D weight is stored in
// scheme s (codes and F16 scales) and every other tensor in F32. It reads
// the shapes only, so the weights need no Data (a model that keeps its
// weights as stored).
func Measure(ws []Weight, s Scheme) Footprint {
	var f Footprint
	for _, w := range ws {
		n := int64(1)
		for _, d := range w.Shape {
			n *= int64(d)
		}
		f.Params += n
		if len(w.Shape) == 2 {
			f.Bits += s.StorageBits(w.Shape[0], w.Shape[1])
		} else {
			f.Bits += 32 * n
		}
	}
	return f
}

// RoundToNearest replaces, in place, the values of every 2-D weight of ws
// by their round-to-nearest quantization in scheme s (the dequantized
// values, as a loader of the quantized file would see them), leaves the
// other tensors alone and returns the footprint of the quantized set (see
// Measure). This is the same-size baseline: no calibration, no training.
// A weight whose data does not match its shape, or holds a non-finite
// value, is an error wrapping formats.ErrInvalid; after a non-finite value
// ws is partly quantized.
func RoundToNearest(ws []Weight, s Scheme) (Footprint, error) {
	if err := s.Validate(); err != nil {
		return Footprint{}, err
	}
	for _, w := range ws {
		if err := checkShape(w); err != nil {
			return Footprint{}, err
		}
	}
	for _, w := range ws {
		if len(w.Shape) != 2 {
			continue
		}
		qt, err := Quantize(w.Data, w.Shape[0], w.Shape[1], s)
		if err != nil {
			return Footprint{}, fmt.Errorf("%s: %w", w.Name, err)
		}
		qt.Dequantize(w.Data)
	}
	return Measure(ws, s), nil
}

// checkShape reports a weight whose data length does not match its shape.
func checkShape(w Weight) error {
	n := 1
	for _, d := range w.Shape {
		n *= d
	}
	if n != len(w.Data) {
		return fmt.Errorf("%s: %w: %d values for shape %v", w.Name, formats.ErrInvalid, len(w.Data), w.Shape)
	}
	return nil
}
