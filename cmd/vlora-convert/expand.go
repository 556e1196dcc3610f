package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// expandOptions are the options of the expand command.
type expandOptions struct {
	streams
	in, out string
	force   bool
}

func newExpandCmd(s streams) *cobra.Command {
	o := &expandOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "expand FILE|DIR --out DIR",
		Short: "Write the dense per-layer weights of a VLoRA file as a Hugging Face checkpoint",
		Long: `expand materializes every layer's weights (base + B·A) and writes DIR/model.safetensors under
the original tensor names and dtypes, plus DIR/config.json and the tokenizer and generation files
found beside the VLoRA file (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
generation_config.json, preprocessor_config.json), so the result loads and runs (generate, verify)
like the original.`,
		Example: `  vlora-convert expand ./bytellama-vlora --out ./bytellama-dense`,
		Args:    cobra.ExactArgs(1),
		RunE:    runE(o),
	}
	cmd.Flags().StringVar(&o.out, "out", "", "output directory (required)")
	cmd.Flags().BoolVar(&o.force, "force", false, "write into --out even when it holds files vlora-convert did not write (those of the same names are replaced)")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete takes the file argument.
func (o *expandOptions) Complete(_ *cobra.Command, args []string) error {
	o.in = args[0]
	return nil
}

// Validate refuses an output directory that would write over the input
// or into the directory that holds it.
func (o *expandOptions) Validate() error {
	inputs := []string{o.in}
	if p, err := vlora.ResolvePath(o.in); err == nil {
		inputs = append(inputs, filepath.Dir(p))
	}
	return guardOutputs("--out", outputFiles(o.out, formats.SingleFile, formats.ConfigFile), inputs...)
}

// Run writes the dense checkpoint, after checking that --out does not hold
// the original the file was made from; a failed or interrupted run leaves
// no output directory it created.
func (o *expandOptions) Run(ctx context.Context) error {
	if err := refuseOriginal(ctx, o.in, o.out); err != nil {
		return err
	}
	d, err := outdir.Open(o.out, outdir.Options{Flag: "--out", Force: o.force})
	if err != nil {
		return err
	}
	err = convert.Expand(ctx, o.in, d.Work())
	if err == nil {
		var p string
		if p, err = vlora.ResolvePath(o.in); err == nil {
			err = copyCompanions(filepath.Dir(p), d.Work())
		}
	}
	if err == nil {
		err = d.Commit()
	}
	d.Close(false)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "wrote %s\n", o.out)
	return nil
}

// refuseOriginal refuses to write into dir when it holds one of the source
// files the VLoRA file at path records, with the recorded SHA-256: that is
// the original checkpoint, which an expansion must never replace.
func refuseOriginal(ctx context.Context, path, dir string) error {
	mf, f, err := vlora.ReadManifest(path)
	if err != nil {
		return err
	}
	f.Close()
	for _, src := range mf.Sources {
		p := filepath.Join(dir, src.Name)
		st, err := os.Stat(p)
		if err != nil || st.Size() != src.Bytes {
			continue
		}
		if sum, _, err := formats.HashFile(ctx, p); err == nil && sum == src.SHA256 {
			return usagef("--out %s holds %s, the original this file was made from; choose another directory", dir, src.Name)
		}
	}
	return nil
}
