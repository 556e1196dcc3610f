package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/vlora"
)

// summary is the machine-readable description of a VLoRA file.
type summary struct {
	File           string                `json:"file,omitempty"`
	Architecture   string                `json:"architecture,omitempty"`
	LayerPrefix    string                `json:"layer_prefix"`
	NumLayers      int                   `json:"num_layers"`
	CompoundSize   int                   `json:"compound_size"`
	Compounds      [][]int               `json:"compounds"`
	BaseMode       string                `json:"base_mode"`
	SVD            vlora.SVDInfo         `json:"svd"`
	DType          string                `json:"dtype"`
	ParamsOriginal int64                 `json:"params_original"`
	ParamsStored   int64                 `json:"params_stored"`
	BytesOriginal  int64                 `json:"bytes_original"`
	BytesStored    int64                 `json:"bytes_stored"`
	Reduction      float64               `json:"reduction"`
	MeanRelError   float64               `json:"mean_rel_error"`
	Increments     []vlora.IncrementDesc `json:"increments"`
	Sources        []vlora.SourceFile    `json:"sources"`
	Distill        *vlora.DistillInfo    `json:"distill,omitempty"`
	Align          *vlora.AlignInfo      `json:"align,omitempty"`
	// Quant is the quantization plan of the 2-D tensors, if any.
	Quant *vlora.QuantPlan `json:"quant,omitempty"`
	// Storage is what each family of stored tensors costs, and
	// BitsPerWeight the file's bits per original weight.
	Storage       []vlora.FamilyStorage `json:"storage"`
	BitsPerWeight float64               `json:"bits_per_weight"`
	// Plan is how the original's 2-D tensors are stored, grouped.
	Plan []vlora.PlanGroup `json:"plan"`
	// MinRank and MaxRank bound the stored ranks.
	MinRank int `json:"min_rank"`
	MaxRank int `json:"max_rank"`
}

func summarize(m *vlora.Manifest) summary {
	s := summary{
		Architecture: m.Architecture, LayerPrefix: m.LayerPrefix, NumLayers: m.NumLayers,
		CompoundSize: m.CompoundSize, Compounds: m.Compounds, BaseMode: string(m.BaseMode), SVD: m.SVD,
		DType: m.DType, ParamsOriginal: m.Counts.ParamsOriginal, ParamsStored: m.Counts.ParamsStored,
		BytesOriginal: m.Counts.BytesOriginal, BytesStored: m.Counts.BytesStored,
		Increments: m.Increments, Sources: m.Sources, Distill: m.Distill, Quant: m.Quant, Align: m.Align,
	}
	// Manifests that passed validation have a known dtype.
	s.Storage, _, _ = m.Storage()
	s.BitsPerWeight, _ = m.BitsPerOriginalWeight()
	s.Plan = m.Plan()
	s.MinRank, s.MaxRank = m.RankRange()
	if m.Counts.ParamsOriginal > 0 {
		s.Reduction = 1 - float64(m.Counts.ParamsStored)/float64(m.Counts.ParamsOriginal)
	}
	n := 0
	for _, inc := range m.Increments {
		if inc.Kind == vlora.KindLowRank {
			s.MeanRelError += inc.RelError
			n++
		}
	}
	if n > 0 {
		s.MeanRelError /= float64(n)
	}
	return s
}

func printSummary(w io.Writer, s summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if s.File != "" {
		fmt.Fprintf(tw, "file\t%s\n", s.File)
	}
	fmt.Fprintf(tw, "architecture\t%s\n", s.Architecture)
	fmt.Fprintf(tw, "layer stack\t%s{0..%d} (%d layers)\n", s.LayerPrefix, s.NumLayers-1, s.NumLayers)
	fmt.Fprintf(tw, "compounds\t%d of size %d, base %s\n", len(s.Compounds), s.CompoundSize, s.BaseMode)
	if a := s.Align; a != nil {
		fmt.Fprintf(tw, "aligned\texact symmetry alignment to the compound %s (%d re-alignments)\n", a.Reference, a.Iterations)
	}
	// The ranks stored, which a plan chooses per tensor.
	var rank string
	switch {
	case s.MaxRank == 0:
		rank = "no low-rank increments"
	case s.MinRank == s.MaxRank:
		rank = fmt.Sprintf("rank %d", s.MaxRank)
	default:
		rank = fmt.Sprintf("ranks %d–%d", s.MinRank, s.MaxRank)
	}
	if s.SVD.Energy > 0 {
		rank += fmt.Sprintf(" (energy %g)", s.SVD.Energy)
	}
	stored := s.DType
	if s.Quant != nil && s.Quant.Active() {
		stored = "quantized as the plan says, the rest " + s.DType
	}
	fmt.Fprintf(tw, "increments\t%s, %s SVD, stored %s\n", rank, s.SVD.Method, stored)
	fmt.Fprintf(tw, "parameters\t%d stored / %d original (%.1f%% fewer)\n", s.ParamsStored, s.ParamsOriginal, 100*s.Reduction)
	fmt.Fprintf(tw, "bytes\t%s stored / %s original\n", humanBytes(s.BytesStored), humanBytes(s.BytesOriginal))
	fmt.Fprintf(tw, "bits per weight\t%.3f per original weight (whole file)\n", s.BitsPerWeight)
	for _, f := range s.Storage {
		fmt.Fprintf(tw, "  %s\t%d values, %s, %.3f bits each\n", f.Family, f.Params, f.Scheme, f.BitsPerWeight())
	}
	for i, g := range s.Plan {
		label := ""
		if i == 0 {
			label = "plan"
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, g)
	}
	fmt.Fprintf(tw, "mean weight error\t%.4f (‖W − Ŵ‖/‖W‖ over low-rank increments, at compression)\n", s.MeanRelError)
	if d := s.Distill; d != nil {
		fmt.Fprintf(tw, "distilled\t%d steps, %d tokens, final loss %.4f, eval KL %.4f\n", d.Steps, d.Tokens, d.FinalLoss, d.EvalKL)
	}
	tw.Flush()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// inspectOptions are the options of the inspect command.
type inspectOptions struct {
	streams
	json bool
	path string
}

func newInspectCmd(s streams) *cobra.Command {
	o := &inspectOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "inspect FILE|DIR",
		Short: "Describe a VLoRA file: compounds, ranks, sizes and per-increment errors",
		Example: `  vlora-convert inspect ./bytellama-vlora
  vlora-convert inspect ./bytellama-vlora/model.vlora.safetensors --json | jq .params_stored`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// Complete takes the file argument.
func (o *inspectOptions) Complete(_ *cobra.Command, args []string) error {
	o.path = args[0]
	return nil
}

// Validate has nothing to check beyond the argument count.
func (o *inspectOptions) Validate() error { return nil }

// Run reads the manifest and prints the summary and the increments.
func (o *inspectOptions) Run(context.Context) error {
	m, f, err := vlora.ReadManifest(o.path)
	if err != nil {
		return err
	}
	f.Close()
	s := summarize(m)
	s.File = f.Path()
	if o.json {
		return printJSON(o.Out, s)
	}
	printSummary(o.Out, s)
	fmt.Fprintln(o.Out)
	incs := append([]vlora.IncrementDesc(nil), s.Increments...)
	sort.SliceStable(incs, func(i, j int) bool { return incs[i].Layer < incs[j].Layer })
	tw := tabwriter.NewWriter(o.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "layer\ttensor\tkind\trank\trel error\tenergy kept")
	for _, inc := range incs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%.4f\t%.3f\n", inc.Layer, inc.Suffix, inc.Kind, inc.Rank, inc.RelError, inc.Energy)
	}
	return tw.Flush()
}
