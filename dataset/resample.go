package dataset

import (
	"image"
	"math"
)

// This file resizes 8-bit RGB images exactly as Pillow's Image.resize does
// (Resample.c and Geometry.c of Pillow 9 and later, without reducing_gap,
// as Hugging Face's image processors call it).

// pilPrecisionBits is the fixed-point precision of Pillow's 8-bit
// convolution coefficients.
const pilPrecisionBits = 32 - 8 - 2

// pilFilter is one of Pillow's resampling filters: its kernel and support.
type pilFilter struct {
	at      func(x float64) float64
	support float64
}

var (
	pilBilinear = pilFilter{func(x float64) float64 {
		x = math.Abs(x)
		if x < 1 {
			return 1 - x
		}
		return 0
	}, 1}
	pilBicubic = pilFilter{func(x float64) float64 {
		const a = -0.5
		x = math.Abs(x)
		switch {
		case x < 1:
			return ((a+2)*x-(a+3))*x*x + 1
		case x < 2:
			return (((x-5)*x+8)*x - 4) * a
		}
		return 0
	}, 2}
)

// pilCoeffs holds, for each output pixel along one axis, the first input
// pixel it reads and the fixed-point weights of the input pixels from there.
type pilCoeffs struct {
	first []int
	k     [][]int32
}

// pilPrecompute computes Pillow's coefficients (precompute_coeffs and
// normalize_coeffs_8bpc) for resampling inSize pixels to outSize: the
// filter is widened by the scale when shrinking, the weights of each output
// pixel are normalized to sum to one and then rounded to fixed point.
func pilPrecompute(inSize, outSize int, f pilFilter) pilCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := f.support * filterScale
	c := pilCoeffs{first: make([]int, outSize), k: make([][]int32, outSize)}
	w := make([]float64, 0, int(math.Ceil(support))*2+1)
	for xx := range outSize {
		center := (float64(xx) + 0.5) * scale
		ss := 1 / filterScale
		// Go's conversion truncates toward zero, as C's does.
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), inSize) - xmin
		w = w[:0]
		var ww float64
		for x := 0; x < xmax; x++ {
			v := f.at((float64(x+xmin) - center + 0.5) * ss)
			w = append(w, v)
			ww += v
		}
		k := make([]int32, len(w))
		for x, v := range w {
			if ww != 0 {
				v /= ww
			}
			if v < 0 {
				k[x] = int32(-0.5 + v*(1<<pilPrecisionBits))
			} else {
				k[x] = int32(0.5 + v*(1<<pilPrecisionBits))
			}
		}
		c.first[xx], c.k[xx] = xmin, k
	}
	return c
}

// pilClip8 turns a fixed-point sum into an 8-bit value, as Pillow's clip8.
func pilClip8(v int64) uint8 {
	switch {
	case v >= 1<<pilPrecisionBits<<8:
		return 255
	case v <= 0:
		return 0
	}
	return uint8(v >> pilPrecisionBits)
}

// pilResize returns src (opaque RGBA, bounds at the origin) resized to w ×
// h with the filter f: a horizontal pass and then a vertical pass, each
// rounded to 8 bits, the passes an axis does not need skipped.
func pilResize(src *image.RGBA, w, h int, f pilFilter) *image.RGBA {
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	cur := src
	if w != sw {
		c := pilPrecompute(sw, w, f)
		out := image.NewRGBA(image.Rect(0, 0, w, sh))
		for y := range sh {
			row := cur.Pix[y*cur.Stride:]
			for xx := range w {
				for ch := range 3 {
					s := int64(1) << (pilPrecisionBits - 1)
					for x, k := range c.k[xx] {
						s += int64(row[(c.first[xx]+x)*4+ch]) * int64(k)
					}
					out.Pix[y*out.Stride+xx*4+ch] = pilClip8(s)
				}
				out.Pix[y*out.Stride+xx*4+3] = 255
			}
		}
		cur = out
	}
	if h != sh {
		c := pilPrecompute(sh, h, f)
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		for yy := range h {
			for x := range w {
				for ch := range 3 {
					s := int64(1) << (pilPrecisionBits - 1)
					for y, k := range c.k[yy] {
						s += int64(cur.Pix[(c.first[yy]+y)*cur.Stride+x*4+ch]) * int64(k)
					}
					out.Pix[yy*out.Stride+x*4+ch] = pilClip8(s)
				}
				out.Pix[yy*out.Stride+x*4+3] = 255
			}
		}
		cur = out
	}
	return cur
}

// pilNearest returns src resized to w × h by Pillow's nearest-neighbour
// scaling (ImagingScaleAffine): the source coordinate of each output pixel
// is accumulated in float64 from half a step, step by step, and truncated,
// so that at exact boundaries it takes the pixel Pillow takes.
func pilNearest(src *image.RGBA, w, h int) *image.RGBA {
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	coords := func(in, out int) []int {
		step := float64(in) / float64(out)
		c := make([]int, out)
		pos := step * 0.5
		for i := range c {
			c[i] = min(max(int(pos), 0), in-1)
			pos += step
		}
		return c
	}
	xs, ys := coords(sw, w), coords(sh, h)
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y, sy := range ys {
		for x, sx := range xs {
			copy(out.Pix[y*out.Stride+x*4:y*out.Stride+x*4+4], src.Pix[sy*src.Stride+sx*4:sy*src.Stride+sx*4+4])
		}
	}
	return out
}
