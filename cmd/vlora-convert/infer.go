package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// inferOptions are the options of the infer command.
type inferOptions struct {
	streams
	model, input, out string
	hidden, quiet     bool
	force             bool
}

func newInferCmd(s streams) *cobra.Command {
	o := &inferOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "infer --model DIR|FILE --input IN.safetensors --out OUT.safetensors",
		Short: "Run a model (dense directory or VLoRA file) on inputs and write its outputs",
		Long: `infer reads input_ids (and token_type_ids) or pixel_values from IN.safetensors, runs the model
and writes logits, or last_hidden_state and pooler_output (BERT), and with --hidden-states every
hidden_states.i, under the same names Hugging Face golden files use.`,
		Example: `  vlora-convert infer --model ./bytellama-vlora --input golden.safetensors --out ours.safetensors --hidden-states`,
		Args:    cobra.NoArgs,
		RunE:    runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.model, "model", "", "model directory or VLoRA file (required)")
	fl.StringVar(&o.input, "input", "", "input safetensors file (required)")
	fl.StringVar(&o.out, "out", "", "output safetensors file (required)")
	fl.BoolVar(&o.hidden, "hidden-states", false, "also write hidden_states.i")
	fl.BoolVarP(&o.quiet, "quiet", "q", false, "no token count and speed of the forward pass on stderr")
	fl.BoolVar(&o.force, "force", false, "replace --out even when it is not an earlier output of infer")
	cmd.MarkFlagRequired("model")
	cmd.MarkFlagRequired("input")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete has nothing to derive.
func (o *inferOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate refuses, before anything is read, an output that would write
// over an input, a directory, a path in a missing or read-only directory,
// and an existing file that is not an earlier output of infer (unless
// --force).
func (o *inferOptions) Validate() error {
	if err := guardOutputs("--out", []string{o.out}, o.model, o.input); err != nil {
		return err
	}
	return outdir.CheckFile("--out", o.out, o.force, isInferOutput)
}

// isInferOutput reports whether path is a safetensors file holding only
// the tensors infer writes.
func isInferOutput(path string) bool {
	f, err := formats.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, n := range f.Names() {
		switch {
		case n == "logits", n == "last_hidden_state", n == "pooler_output":
		case strings.HasPrefix(n, "hidden_states."):
			if _, err := strconv.Atoi(strings.TrimPrefix(n, "hidden_states.")); err != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Run loads the model, runs it on the input file and writes the outputs.
func (o *inferOptions) Run(context.Context) error {
	m, err := model.LoadAs(o.model, model.Stored)
	if err != nil {
		return err
	}
	defer m.Close()
	tightenGC(m)
	f, err := formats.Open(o.input)
	if err != nil {
		return err
	}
	defer f.Close()
	in, err := readInput(f)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s: %d inputs of length %d", o.input, in.Batch, max(in.Seq, 1))
	if err := dataset.CheckBatchBudget(what, dataset.ForwardBytes(m.Config, in.Batch, in.Seq, o.hidden), modelParams(m)); err != nil {
		return err
	}
	start, cpu0 := time.Now(), cpuTime()
	res, err := m.Net.Forward(in, transformer.Options{Hidden: o.hidden})
	if err != nil {
		return fmt.Errorf("%s: %w", o.input, err)
	}
	if !o.quiet {
		secs, cpu := time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds()
		n := in.Batch * max(in.Seq, 1)
		fmt.Fprintf(o.ErrOut, "forward: %d×%d inputs in %.2f s, %.2f CPU-s (%.1f tokens/s)\n", in.Batch, max(in.Seq, 1), secs, cpu, float64(n)/secs)
	}
	return writeOutputs(o.out, res, o.hidden)
}

// readInput builds a transformer input from golden-style tensor names.
func readInput(f *formats.File) (*transformer.Input, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", f.Path(), formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	if ti, ok := f.Info("pixel_values"); ok {
		if len(ti.Shape) != 4 {
			return nil, bad("pixel_values has shape %v, want [B, C, H, W]", ti.Shape)
		}
		px, err := f.ReadFloat32("pixel_values")
		if err != nil {
			return nil, err
		}
		return &transformer.Input{Batch: ti.Shape[0], Pixels: px}, nil
	}
	ti, ok := f.Info("input_ids")
	if !ok {
		return nil, bad("no input_ids or pixel_values tensor")
	}
	if len(ti.Shape) != 2 {
		return nil, bad("input_ids has shape %v, want [B, T]", ti.Shape)
	}
	ids, err := f.ReadInts("input_ids")
	if err != nil {
		return nil, err
	}
	in := &transformer.Input{Batch: ti.Shape[0], Seq: ti.Shape[1], IDs: ids}
	if tt, ok := f.Info("token_type_ids"); ok {
		if tt.NumElements() != len(ids) {
			return nil, bad("token_type_ids has shape %v, input_ids %v", tt.Shape, ti.Shape)
		}
		if in.TokenTypes, err = f.ReadInts("token_type_ids"); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// writeOutputs writes a forward result under golden-file names.
func writeOutputs(path string, o *transformer.Output, hidden bool) error {
	type item struct {
		name  string
		shape []int
		data  []float32
	}
	var items []item
	if o.Logits != nil {
		items = append(items, item{"logits", o.LogitsShape, o.Logits})
	}
	if o.LastHidden != nil {
		items = append(items, item{"last_hidden_state", []int{o.Batch, o.Seq, o.Hidden}, o.LastHidden})
	}
	if o.Pooler != nil {
		items = append(items, item{"pooler_output", []int{o.Batch, o.Hidden}, o.Pooler})
	}
	if hidden {
		for i, h := range o.HiddenStates {
			items = append(items, item{fmt.Sprintf("hidden_states.%d", i), []int{o.Batch, o.Seq, o.Hidden}, h})
		}
	}
	specs := make([]formats.TensorSpec, len(items))
	for i, it := range items {
		specs[i] = formats.TensorSpec{Name: it.name, DType: formats.F32, Shape: it.shape}
	}
	w, err := formats.Create(path, map[string]string{"format": "pt"}, specs)
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := w.WriteFloat32(it.name, it.data); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Commit()
}

// modelParams returns the parameter count that sizes a batch's memory
// budget: the original's for a VLoRA model, which runs at the original's
// width.
func modelParams(m *model.Model) int64 {
	if m.VLoRA != nil {
		return max(m.StoredParams, m.VLoRA.Manifest.Counts.ParamsOriginal)
	}
	return m.StoredParams
}
