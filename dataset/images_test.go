package dataset

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// writePNG writes img as a PNG file at path, creating its folder.
func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// gradient returns a 4 × 4 image whose red channel depends on x only
// (r[x]), green on y only (g[y]), blue is 128, with the given alpha (not
// premultiplied).
func gradient(r, g [4]uint8, alpha uint8) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	for y := 0; y < 4; y++ {
		for x := 0; x < 4; x++ {
			img.SetNRGBA(x, y, color.NRGBA{r[x], g[y], 128, alpha})
		}
	}
	return img
}

// TestLoadImageFolder builds a tiny ImageFolder layout and checks labels,
// order and every pixel value against a hand computation of PIL's
// bilinear 4 → 2 reduction, rescale and normalization.
//
// Shrinking by 2, PIL's bilinear filter is widened to a support of 2
// pixels: output pixel 0 (centre 1.0) weighs source pixels 0, 1, 2 (centres
// 0.5, 1.5, 2.5) by 1−|d|/2 = 0.75, 0.75, 0.25, and output pixel 1 (centre
// 3.0) weighs pixels 1, 2, 3 by 0.25, 0.75, 0.75; both sums are 1.75. So
// red [10 50 90 250] becomes (7.5+37.5+22.5)/1.75 = 38.57 → 39 and
// (12.5+67.5+187.5)/1.75 = 152.86 → 153; green [20 60 100 200] becomes
// 85/1.75 = 48.57 → 49 and 240/1.75 = 137.14 → 137 along y; blue stays 128.
func TestLoadImageFolder(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "images")
	writePNG(t, filepath.Join(root, "dog", "b.png"), gradient([4]uint8{10, 50, 90, 250}, [4]uint8{20, 60, 100, 200}, 255))
	// Alpha is dropped, as PIL's convert("RGB") does, not multiplied in.
	writePNG(t, filepath.Join(root, "cat", "a.png"), gradient([4]uint8{10, 50, 90, 250}, [4]uint8{20, 60, 100, 200}, 100))
	// An image already at the target size is not resampled.
	same := image.NewNRGBA(image.Rect(0, 0, 2, 2))
	for i := range same.Pix {
		same.Pix[i] = uint8(40 * i)
	}
	writePNG(t, filepath.Join(root, "ant", "c.png"), same)
	pre := filepath.Join(dir, "preprocessor_config.json")
	os.WriteFile(pre, []byte(`{"do_resize": true, "size": {"height": 2, "width": 2}, "resample": 2,
		"do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
		"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`), 0o644)

	d, err := Load(context.Background(), root, LoadOptions{Preprocessor: pre, LabelsFromFolders: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 3 || d.C != 3 || d.H != 2 || d.W != 2 || !slices.Equal(d.Labels, []int{0, 1, 2}) {
		t.Fatalf("N=%d C=%d H=%d W=%d labels %v, want 3 images of 3×2×2 labelled ant=0 cat=1 dog=2", d.N, d.C, d.H, d.W, d.Labels)
	}
	norm := func(v uint8) float32 { return (float32(float64(v)*0.00392156862745098) - 0.5) / 0.5 }
	// [C, H, W] of the resized gradient: red varies along x, green along y.
	var grad []float32
	for _, v := range []uint8{39, 153, 39, 153, 49, 49, 137, 137, 128, 128, 128, 128} {
		grad = append(grad, norm(v))
	}
	var small []float32
	for c := 0; c < 3; c++ {
		for p := 0; p < 4; p++ {
			small = append(small, norm(same.Pix[4*p+c]))
		}
	}
	want := slices.Concat(small, grad, grad)
	// Tolerance: float32 rounding of the same two operations.
	for i := range want {
		if math.Abs(float64(d.Pixels[i]-want[i])) > 1e-6 {
			t.Fatalf("pixel value %d (image %d) = %v, want %v", i, i/12, d.Pixels[i], want[i])
		}
	}
	if len(d.SHA256) != 64 {
		t.Errorf("digest %q", d.SHA256)
	}

	// Without labels, images directly in the folder are fine too.
	flat := filepath.Join(dir, "flat")
	writePNG(t, filepath.Join(flat, "x.png"), same)
	if d, err := Load(context.Background(), flat, LoadOptions{Preprocessor: pre}); err != nil || d.N != 1 || d.Labels != nil {
		t.Errorf("flat folder: %v, %+v", err, d)
	}
	for _, tc := range []struct {
		name string
		path string
		opt  LoadOptions
	}{
		{"no preprocessor", root, LoadOptions{}},
		{"labels without class folders", flat, LoadOptions{Preprocessor: pre, LabelsFromFolders: true}},
		{"center crop", root, LoadOptions{Preprocessor: writeFile(t, dir, "crop.json", `{"do_center_crop": true}`)}},
		{"zero std", root, LoadOptions{Preprocessor: writeFile(t, dir, "std.json", `{"image_std": 0}`)}},
		{"lanczos", root, LoadOptions{Preprocessor: writeFile(t, dir, "lanczos.json", `{"resample": 1}`)}},
		{"not an image", writeFile(t, filepath.Join(dir, "broken"), "x.png", "not a png"), LoadOptions{Preprocessor: pre}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Load(context.Background(), tc.path, tc.opt); !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("error %v, want formats.ErrInvalid", err)
			}
		})
	}
}

// writeFile writes content to dir/name and returns the path (the folder
// for a .png, so that it can be loaded as an image folder).
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if filepath.Ext(name) == ".png" {
		return dir
	}
	return p
}

// TestReadPreprocess checks the forms of size, image_mean and image_std
// that preprocessor_config.json files use, and ViTImageProcessor's
// defaults.
func TestReadPreprocess(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, json string
		want       Preprocess
	}{
		{"defaults", `{}`, Preprocess{DoResize: true, Height: 224, Width: 224, Resample: 2, DoRescale: true,
			RescaleFactor: 1.0 / 255, DoNormalize: true, Mean: []float64{0.5, 0.5, 0.5}, Std: []float64{0.5, 0.5, 0.5}}},
		{"square size, ImageNet statistics", `{"size": 16, "resample": 3, "do_rescale": false, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}`,
			Preprocess{DoResize: true, Height: 16, Width: 16, Resample: 3, RescaleFactor: 1.0 / 255, DoNormalize: true,
				Mean: []float64{0.485, 0.456, 0.406}, Std: []float64{0.229, 0.224, 0.225}}},
		{"height and width, scalar statistics", `{"size": {"height": 8, "width": 12}, "do_normalize": false, "image_mean": 0.1, "image_std": 2}`,
			Preprocess{DoResize: true, Height: 8, Width: 12, Resample: 2, DoRescale: true, RescaleFactor: 1.0 / 255,
				Mean: []float64{0.1, 0.1, 0.1}, Std: []float64{2, 2, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "preprocessor_config.json")
			os.WriteFile(p, []byte(tc.json), 0o644)
			got, err := ReadPreprocess(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.DoResize != tc.want.DoResize || got.Height != tc.want.Height || got.Width != tc.want.Width ||
				got.Resample != tc.want.Resample || got.DoRescale != tc.want.DoRescale || got.RescaleFactor != tc.want.RescaleFactor ||
				got.DoNormalize != tc.want.DoNormalize || !slices.Equal(got.Mean, tc.want.Mean) || !slices.Equal(got.Std, tc.want.Std) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"size": {"shortest_edge": 224}}`, `{"size": 0}`, `{"image_mean": [0.5, 0.5]}`, `not json`} {
		p := filepath.Join(dir, "bad.json")
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := ReadPreprocess(p); !errors.Is(err, formats.ErrInvalid) {
			t.Errorf("%s: error %v, want formats.ErrInvalid", bad, err)
		}
	}
}

// TestLoadJPEG checks that a JPEG decodes and is preprocessed to the
// configured size (its values depend on the decoder, see Preprocess.Pixels).
func TestLoadJPEG(t *testing.T) {
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 9, 7))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	f, err := os.Create(filepath.Join(dir, "a.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := jpeg.Encode(f, img, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pre := writeFile(t, t.TempDir(), "preprocessor_config.json", `{"size": 4}`)
	d, err := Load(context.Background(), dir, LoadOptions{Preprocessor: pre})
	if err != nil {
		t.Fatal(err)
	}
	if d.N != 1 || d.H != 4 || d.W != 4 || len(d.Pixels) != 48 {
		t.Errorf("N=%d H=%d W=%d, %d values", d.N, d.H, d.W, len(d.Pixels))
	}
	for _, v := range d.Pixels {
		if v < -1 || v > 1 {
			t.Fatalf("value %v outside [-1, 1]", v)
		}
	}
}

// TestResizeMatchesPillow checks the resized 8-bit values of three images,
// for every filter and for shrinking and stretching, against Pillow's own
// output (testdata/pil, see its README): every value must be equal.
func TestResizeMatchesPillow(t *testing.T) {
	dir := testenv.Testdata(t, "pil")
	for _, name := range []string{"noise-37x23", "noise-64x16", "wave-9x13"} {
		img, err := decodeImage(filepath.Join(dir, name+".png"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			name     string
			resample int
		}{{"nearest", resampleNearest}, {"bilinear", resampleBilinear}, {"bicubic", resampleBicubic}} {
			for _, size := range [][2]int{{16, 16}, {20, 12}} {
				t.Run(fmt.Sprintf("%s %s %dx%d", name, f.name, size[0], size[1]), func(t *testing.T) {
					want, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.%s-%dx%d.rgb", name, f.name, size[0], size[1])))
					if err != nil {
						t.Fatal(err)
					}
					p := &Preprocess{DoResize: true, Width: size[0], Height: size[1], Resample: f.resample}
					px, h, w := p.Pixels(img)
					for y := 0; y < h; y++ {
						for x := 0; x < w; x++ {
							for c := 0; c < 3; c++ {
								if got, ref := px[(c*h+y)*w+x], want[(y*w+x)*3+c]; got != float32(ref) {
									t.Fatalf("pixel (%d, %d) channel %d = %v, Pillow %d", x, y, c, got, ref)
								}
							}
						}
					}
				})
			}
		}
	}
}
