package dataset

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // JPEG decoder
	_ "image/png"  // PNG decoder
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
)

// imageExts are the image file types an image folder may hold.
var imageExts = []string{".png", ".jpg", ".jpeg"}

// Image limits.
const (
	// maxImagePixels bounds the pixels of one decoded image (64 M).
	maxImagePixels = 1 << 26
	// maxPixelValues bounds the pixel values of an image set (2 GiB of
	// float32).
	maxPixelValues = 1 << 29
)

// PIL resampling filters, as preprocessor_config.json's resample numbers
// them.
const (
	resampleNearest  = 0
	resampleBilinear = 2
	resampleBicubic  = 3
)

// Preprocess says how an image becomes pixel values, as a Hugging Face
// image processor's preprocessor_config.json says (ViTImageProcessor's
// fields and defaults): the image is converted to RGB, resized to Height ×
// Width with the PIL filter Resample, multiplied by RescaleFactor, and
// normalized per channel as (x − Mean) / Std.
type Preprocess struct {
	DoResize      bool
	Height, Width int
	Resample      int
	DoRescale     bool
	RescaleFactor float64
	DoNormalize   bool
	Mean, Std     []float64
}

// ReadPreprocess reads a preprocessor_config.json file, or the one in a
// directory. Absent fields take ViTImageProcessor's defaults (resize to 224
// × 224, bilinear, rescale by 1/255, normalize with mean and std 0.5).
// Settings this package does not implement (center crop, shortest-edge
// sizes, other filters) are errors wrapping formats.ErrInvalid.
func ReadPreprocess(path string) (*Preprocess, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "preprocessor_config.json")
	}
	raw, err := formats.ReadRegularFile(path, formats.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("%w: image data needs the model's preprocessor_config.json: %v", formats.ErrInvalid, err)
	}
	var c struct {
		DoResize      *bool           `json:"do_resize"`
		Size          json.RawMessage `json:"size"`
		Resample      *int            `json:"resample"`
		DoRescale     *bool           `json:"do_rescale"`
		RescaleFactor *float64        `json:"rescale_factor"`
		DoNormalize   *bool           `json:"do_normalize"`
		Mean          json.RawMessage `json:"image_mean"`
		Std           json.RawMessage `json:"image_std"`
		DoCenterCrop  bool            `json:"do_center_crop"`
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", path, formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, bad("%v", err)
	}
	or := func(b *bool) bool { return b == nil || *b }
	p := &Preprocess{DoResize: or(c.DoResize), Height: 224, Width: 224, Resample: resampleBilinear,
		DoRescale: or(c.DoRescale), RescaleFactor: 1.0 / 255, DoNormalize: or(c.DoNormalize),
		Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.5, 0.5, 0.5}}
	if c.DoCenterCrop {
		return nil, bad("do_center_crop is not supported")
	}
	if len(c.Size) > 0 {
		var ok bool
		if p.Height, p.Width, ok = parseSize(c.Size); !ok {
			return nil, bad("size %s: want a number or {\"height\", \"width\"}", c.Size)
		}
	}
	if p.Height <= 0 || p.Width <= 0 || p.Height*p.Width > maxImagePixels {
		return nil, bad("size %d × %d out of range", p.Height, p.Width)
	}
	if c.Resample != nil {
		p.Resample = *c.Resample
	}
	if p.Resample != resampleNearest && p.Resample != resampleBilinear && p.Resample != resampleBicubic {
		return nil, bad("resample %d: want 0 (nearest), 2 (bilinear) or 3 (bicubic)", p.Resample)
	}
	if c.RescaleFactor != nil {
		p.RescaleFactor = *c.RescaleFactor
	}
	for _, f := range []struct {
		raw json.RawMessage
		dst *[]float64
	}{{c.Mean, &p.Mean}, {c.Std, &p.Std}} {
		if len(f.raw) == 0 {
			continue
		}
		v, ok := parseChannels(f.raw)
		if !ok {
			return nil, bad("image_mean and image_std must be a number or 3 numbers, not %s", f.raw)
		}
		*f.dst = v
	}
	for _, s := range p.Std {
		if !(s != 0) || math.IsInf(s, 0) {
			return nil, bad("image_std %v has a zero or non-finite entry", p.Std)
		}
	}
	return p, nil
}

// parseSize reads preprocessor_config.json's size: one side, or
// {"height", "width"}.
func parseSize(raw json.RawMessage) (h, w int, ok bool) {
	var side int
	var hw map[string]int
	switch {
	case json.Unmarshal(raw, &side) == nil:
		return side, side, true
	case json.Unmarshal(raw, &hw) == nil && hw["height"] > 0 && hw["width"] > 0:
		return hw["height"], hw["width"], true
	}
	return 0, 0, false
}

// parseChannels reads a per-channel value of preprocessor_config.json: one
// number for every channel, or three.
func parseChannels(raw json.RawMessage) ([]float64, bool) {
	var one float64
	var three []float64
	switch {
	case json.Unmarshal(raw, &one) == nil:
		return []float64{one, one, one}, true
	case json.Unmarshal(raw, &three) == nil && len(three) == 3:
		return three, true
	}
	return nil, false
}

// Pixels returns the [3, H, W] pixel values of img. The RGB values of img
// (its alpha dropped, as PIL's convert("RGB") does) are resized, when
// DoResize is set, exactly as Pillow's Image.resize does (see pilResize and
// pilNearest), then rescaled and normalized in float32 as Hugging Face's
// image processors do. Mean and Std must hold three values each when
// DoNormalize is set, as ReadPreprocess ensures.
func (p *Preprocess) Pixels(img image.Image) (px []float32, h, w int) {
	rgb := opaqueRGBA(img)
	if p.DoResize && (rgb.Bounds().Dx() != p.Width || rgb.Bounds().Dy() != p.Height) {
		switch p.Resample {
		case resampleNearest:
			rgb = pilNearest(rgb, p.Width, p.Height)
		case resampleBicubic:
			rgb = pilResize(rgb, p.Width, p.Height, pilBicubic)
		default:
			rgb = pilResize(rgb, p.Width, p.Height, pilBilinear)
		}
	}
	b := rgb.Bounds()
	h, w = b.Dy(), b.Dx()
	px = make([]float32, 3*h*w)
	for c := 0; c < 3; c++ {
		var mean, std float32
		if p.DoNormalize {
			mean, std = float32(p.Mean[c]), float32(p.Std[c])
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				v := float32(rgb.Pix[y*rgb.Stride+4*x+c])
				if p.DoRescale {
					v = float32(float64(v) * p.RescaleFactor)
				}
				if p.DoNormalize {
					v = (v - mean) / std
				}
				px[(c*h+y)*w+x] = v
			}
		}
	}
	return px, h, w
}

// opaqueRGBA returns the RGB values of img, alpha dropped (the values
// un-premultiplied, as a PNG with alpha stores them), in an opaque RGBA
// image whose bounds start at (0, 0). The image types the PNG and JPEG
// decoders return for colour images are read directly.
func opaqueRGBA(img image.Image) *image.RGBA {
	b := img.Bounds()
	w := b.Dx()
	out := image.NewRGBA(image.Rect(0, 0, w, b.Dy()))
	var row func(o []uint8, y int)
	switch src := img.(type) {
	case *image.NRGBA:
		row = func(o []uint8, y int) {
			copy(o[:4*w], src.Pix[src.PixOffset(b.Min.X, y):])
		}
	case *image.YCbCr:
		row = func(o []uint8, y int) {
			for x := range w {
				yi, ci := src.YOffset(b.Min.X+x, y), src.COffset(b.Min.X+x, y)
				o[4*x], o[4*x+1], o[4*x+2] = color.YCbCrToRGB(src.Y[yi], src.Cb[ci], src.Cr[ci])
			}
		}
	case *image.RGBA:
		if src.Opaque() {
			row = func(o []uint8, y int) {
				copy(o[:4*w], src.Pix[src.PixOffset(b.Min.X, y):])
			}
		}
	}
	if row == nil {
		row = func(o []uint8, y int) {
			for x := range w {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, y)).(color.NRGBA)
				o[4*x], o[4*x+1], o[4*x+2] = c.R, c.G, c.B
			}
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		o := out.Pix[(y-b.Min.Y)*out.Stride:]
		row(o, y)
		for x := range w {
			o[4*x+3] = 255
		}
	}
	return out
}

// decodeImage reads an image file, refusing images beyond maxImagePixels
// before decoding them.
func decodeImage(path string) (image.Image, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, formats.ErrInvalid, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, fmt.Errorf("%s: %w: image of %d × %d pixels", path, formats.ErrInvalid, cfg.Width, cfg.Height)
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, formats.ErrInvalid, err)
	}
	return img, nil
}

// loadImageDir reads the images (PNG, JPEG) under dir, in lexical order of
// their paths, preprocessed as opt.Preprocessor says; at most opt.Samples
// when that is positive. With opt.LabelsFromFolders each image is labelled
// with the index of its top-level sub-folder among the sorted sub-folder
// names (torchvision's ImageFolder classes); images directly in dir are
// then an error.
func loadImageDir(ctx context.Context, dir string, opt LoadOptions) (*Dataset, []string, error) {
	if opt.Preprocessor == "" {
		return nil, nil, fmt.Errorf("%s: %w: image data needs the model's preprocessor_config.json", dir, formats.ErrInvalid)
	}
	pp, err := ReadPreprocess(opt.Preprocessor)
	if err != nil {
		return nil, nil, err
	}
	files, err := filesWithExt(dir, imageExts...)
	if err != nil {
		return nil, nil, err
	}
	if opt.Samples > 0 && opt.Samples < len(files) {
		files = files[:opt.Samples]
	}
	d := &Dataset{Source: dir, C: 3, H: pp.Height, W: pp.Width}
	var classes []string
	if opt.LabelsFromFolders {
		if classes, err = classFolders(dir); err != nil {
			return nil, nil, err
		}
	}
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		img, err := decodeImage(f)
		if err != nil {
			return nil, nil, err
		}
		px, h, w := pp.Pixels(img)
		if d.N == 0 {
			d.H, d.W = h, w
		} else if h != d.H || w != d.W {
			return nil, nil, fmt.Errorf("%s: %w: %d × %d pixels, the images before it %d × %d (set do_resize)", f, formats.ErrInvalid, w, h, d.W, d.H)
		}
		if len(d.Pixels)+len(px) > maxPixelValues {
			return nil, nil, fmt.Errorf("%s: %w: more than %d pixel values; pass fewer samples", dir, formats.ErrInvalid, maxPixelValues)
		}
		d.Pixels = append(d.Pixels, px...)
		d.N++
		if classes != nil {
			rel, _ := filepath.Rel(dir, f)
			parts := strings.Split(filepath.ToSlash(rel), "/")
			k, ok := slices.BinarySearch(classes, parts[0])
			if len(parts) < 2 || !ok {
				return nil, nil, fmt.Errorf("%s: %w: not in a class sub-folder of %s", f, formats.ErrInvalid, dir)
			}
			d.Labels = append(d.Labels, k)
		}
	}
	return d, files, nil
}

// classFolders returns the sorted names of dir's sub-folders.
func classFolders(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var classes []string
	for _, e := range entries {
		if e.IsDir() {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) == 0 {
		return nil, fmt.Errorf("%s: %w: no class sub-folders to take labels from", dir, formats.ErrInvalid)
	}
	slices.Sort(classes)
	return classes, nil
}
