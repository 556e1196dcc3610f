package main

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestTextDataPipeline runs compress (with distillation on calib text),
// distill and verify on bytellama with text files, and checks that the
// manifest names the training text and its SHA-256 and that verify reports
// both perplexities with its windows.
func TestTextDataPipeline(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	tmp := t.TempDir()
	cut := func(name string, n int) string {
		b, err := os.ReadFile(testenv.Shared(t, filepath.Join("data", "stdlib-text", name)))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(tmp, name)
		os.WriteFile(p, b[:n], 0o644)
		return p
	}
	calib, eval := cut("calib.txt", 8192), cut("eval.txt", 4096)
	out := filepath.Join(tmp, "out")
	if _, stderr, code := run(t, "compress", "--model", dir, "--out", out, "-k", "4", "-r", "8", "--refit=false", "--data", calib,
		"--eval-data", eval, "--seq-len", "64", "--distill-steps", "3", "--batch", "4", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	if _, stderr, code := run(t, "distill", out, "--original", dir, "--data", calib, "--stride", "32",
		"--seq-len", "64", "--steps", "2", "--batch", "4", "--eval-data", eval, "-q"); code != 0 {
		t.Fatalf("distill: %s", stderr)
	}
	vm, err := vlora.Load(filepath.Join(out, vlora.FileName))
	if err != nil {
		t.Fatal(err)
	}
	sum, _, _ := formats.HashFile(t.Context(), calib)
	if d := vm.Manifest.Distill; d == nil || d.Data != calib || d.DataSHA256 != sum {
		t.Errorf("distillation record %+v, want data %s with SHA-256 %s", d, calib, sum)
	}
	for _, stride := range []string{"0", "16"} {
		stdout, stderr, code := run(t, "verify", "--original", dir, "--compressed", out, "--data", eval, "--seq-len", "64", "--stride", stride, "--json")
		if code != 0 {
			t.Fatalf("verify: %s", stderr)
		}
		var rep struct {
			PPLOriginal   *float64 `json:"ppl_original"`
			PPLCompressed *float64 `json:"ppl_compressed"`
			Method        string   `json:"perplexity_method"`
			Positions     int      `json:"positions"`
		}
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		// 4096 tokens: 64 windows scoring 31 targets each, or every
		// target but the first.
		want := map[string]int{"0": 64 * 31, "16": 4095}[stride]
		if rep.PPLOriginal == nil || rep.PPLCompressed == nil || rep.Method == "" || rep.Positions != want {
			t.Errorf("stride %s: report %s", stride, stdout)
		}
	}
	if _, _, code := run(t, "verify", "--original", dir, "--compressed", out, "--data", eval, "--seq-len", "64", "--stride", "65"); code != 2 {
		t.Errorf("stride beyond the window: exit %d, want 2", code)
	}
}

// TestImageFolderPipeline calibrates the ViT fixture on an image folder
// (compress with a few distillation steps), then verifies accuracy with
// labels from the folders.
func TestImageFolderPipeline(t *testing.T) {
	src := testenv.GoldenModel(t, "vit")
	tmp := t.TempDir()
	vit := filepath.Join(tmp, "vit")
	os.Mkdir(vit, 0o755)
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(vit, f), b, 0o644)
	}
	os.WriteFile(filepath.Join(vit, "preprocessor_config.json"), []byte(`{"do_resize": true, "size": {"height": 16, "width": 16},
		"resample": 2, "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
		"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`), 0o644)
	images := filepath.Join(tmp, "images")
	rng := rand.New(rand.NewPCG(1, 2))
	for _, class := range []string{"LABEL_0", "LABEL_1", "LABEL_2"} {
		for i := 0; i < 4; i++ {
			img := image.NewNRGBA(image.Rect(0, 0, 20, 24))
			for p := 0; p < 20*24; p++ {
				img.Set(p%20, p/20, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
			}
			os.MkdirAll(filepath.Join(images, class), 0o755)
			f, err := os.Create(filepath.Join(images, class, string(rune('a'+i))+".png"))
			if err != nil {
				t.Fatal(err)
			}
			png.Encode(f, img)
			f.Close()
		}
	}
	out := filepath.Join(tmp, "out")
	if _, stderr, code := run(t, "compress", "--model", vit, "--out", out, "-k", "2", "-r", "4", "--data", images,
		"--eval-data", images, "--distill-steps", "3", "--batch", "4", "-q"); code != 0 {
		t.Fatalf("compress: %s", stderr)
	}
	rep := verifyImages(t, vit, out, images)
	// The default recipe (budget, whitened initialisation and refit on the
	// image folder, every tensor trained) keeps the classifier's decisions.
	def := filepath.Join(tmp, "default")
	if _, stderr, code := run(t, "compress", "--model", vit, "--out", def, "-k", "2", "--data", images,
		"--eval-data", images, "--distill-steps", "3", "--batch", "4", "-q"); code != 0 {
		t.Fatalf("compress with the default recipe: %s", stderr)
	}
	if d := verifyImages(t, vit, def, images); *d.AccC < *rep.AccO {
		t.Errorf("default recipe: accuracy %.3f, original %.3f (KL %.4g)", *d.AccC, *rep.AccO, *d.KL)
	}
	// Without preprocessor_config.json the folder cannot be read.
	os.Remove(filepath.Join(vit, "preprocessor_config.json"))
	_, stderr, code := run(t, "verify", "--original", vit, "--compressed", out, "--data", images)
	if code != 2 || !strings.Contains(stderr, "preprocessor_config.json") {
		t.Errorf("no preprocessor config: exit %d, %s", code, stderr)
	}
}

// imageReport is the part of verify's JSON report the image tests read.
type imageReport struct {
	AccO *float64 `json:"accuracy_original"`
	AccC *float64 `json:"accuracy_compressed"`
	KL   *float64 `json:"kl_mean"`
}

// verifyImages runs verify on an image folder with folder labels.
func verifyImages(t *testing.T, original, compressed, images string) imageReport {
	t.Helper()
	stdout, stderr, code := run(t, "verify", "--original", original, "--compressed", compressed, "--data", images, "--labels-from-folders", "--json")
	if code != 0 {
		t.Fatalf("verify: %s", stderr)
	}
	var rep imageReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.AccO == nil || rep.AccC == nil || rep.KL == nil {
		t.Fatalf("verify report lacks accuracy or KL: %s", stdout)
	}
	return rep
}
