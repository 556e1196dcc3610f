package engine

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// flagValue returns the value following flag in args, "" when absent.
func flagValue(args []string, flag string) string {
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		return ""
	}
	return args[i+1]
}

func TestJobPrepare(t *testing.T) {
	train := &dataset.Dataset{N: 10, T: 4, IDs: make([]int, 40), Source: "train.txt", SHA256: "abc"}
	for _, tc := range []struct {
		name string
		job  Job
		want map[string]string // flag → value ("" : the flag is absent)
		set  []string          // flags present without a value
	}{
		{"defaults", Job{Distill: distill.Options{Steps: 7}},
			map[string]string{"--steps": "7", "--batch": "8", "--seq-len": "0", "--lr": "0.002", "--warmup": "20",
				"--decay": "cosine", "--min-lr-ratio": "0.01", "--beta2": "0.999", "--train": "bases", "--temperature": "1",
				"--seed": "0", "--augment": "", "--eval-data": ""}, nil},
		{"tokens", Job{Distill: distill.Options{Tokens: 100, Batch: 3, LR: 1e-3, Decay: distill.DecayLinear, Seed: 9,
			HiddenDecay: true, Resume: true, Train: distill.TrainAll, LRScales: distill.LRScales{Bases: 2}}, Augment: 5, AugmentPrefix: 1},
			// 100 tokens at 3 × 4 per step: 9 steps.
			map[string]string{"--steps": "9", "--batch": "3", "--lr": "0.001", "--decay": "linear", "--seed": "9",
				"--train": "all", "--base-lr-scale": "2", "--augment": "5", "--augment-prefix": "1"}, []string{"--hidden-decay", "--resume"}},
		{"as-is file", Job{Distill: distill.Options{Steps: 1}, TrainFile: "given.safetensors"},
			map[string]string{"--data": "given.safetensors"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			j := tc.job
			j.Init, j.Original, j.Out, j.Train, j.Manifest = "in.safetensors", "orig", "out.safetensors", train, &vlora.Manifest{}
			args, err := j.Prepare(dir)
			if err != nil {
				t.Fatal(err)
			}
			if args[0] != "in.safetensors" || flagValue(args, "--original") != "orig" || flagValue(args, "--out") != "out.safetensors" {
				t.Errorf("positional and paths: %q", args[:5])
			}
			for f, v := range tc.want {
				if got := flagValue(args, f); got != v {
					t.Errorf("%s: got %q, want %q", f, got, v)
				}
			}
			for _, f := range tc.set {
				if !slices.Contains(args, f) {
					t.Errorf("%s missing from %q", f, args)
				}
			}
			// The batch order covers the data and its continuations.
			f, err := formats.Open(flagValue(args, "--batch-order"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			idx, err := f.ReadInts("indices")
			if err != nil {
				t.Fatal(err)
			}
			if want := j.Steps() * j.batch(); len(idx) != want {
				t.Errorf("batch order holds %d indices, want %d", len(idx), want)
			}
			if i := slices.Max(idx); i >= train.N+j.Augment {
				t.Errorf("index %d beyond the %d items", i, train.N+j.Augment)
			}
			if tc.job.TrainFile == "" {
				data := flagValue(args, "--data")
				if !strings.HasPrefix(data, dir) {
					t.Errorf("--data %s is not the prepared file", data)
				}
				tf, err := formats.Open(data)
				if err != nil {
					t.Fatal(err)
				}
				if md := tf.Metadata(); md[MetaSource] != "train.txt" || md[MetaSHA256] != "abc" {
					t.Errorf("token file metadata %v", md)
				}
				tf.Close()
			}
		})
	}
}

func TestJobCheck(t *testing.T) {
	train := &dataset.Dataset{N: 1, T: 2, IDs: []int{0, 1}}
	for _, tc := range []struct {
		job  Job
		want string
	}{
		{Job{Train: train, Distill: distill.Options{LocalSteps: 2}}, "--local-steps"},
		{Job{Train: train, Distill: distill.Options{Precondition: true}}, "--scaled-gd"},
		{Job{}, "no training data"},
		{Job{Train: &dataset.Dataset{N: 1, Pixels: []float32{1}, C: 1, H: 1, W: 1}}, "images"},
	} {
		err := tc.job.Check()
		if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want ErrInvalid naming %q", err, tc.want)
		}
	}
	dir := t.TempDir()
	j := Job{Train: train, Manifest: &vlora.Manifest{}, Distill: distill.Options{LocalSteps: 1}}
	if _, err := j.Prepare(dir); err == nil {
		t.Error("Prepare ran a job Check refuses")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused job wrote %d files into %s", len(ents), filepath.Base(dir))
	}
}
