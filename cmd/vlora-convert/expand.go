package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
)

// expandOptions are the options of the expand command.
type expandOptions struct {
	streams
	in, out string
}

func newExpandCmd(s streams) *cobra.Command {
	o := &expandOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "expand FILE|DIR --out DIR",
		Short: "Write the dense per-layer weights of a VLoRA file as a Hugging Face checkpoint",
		Long: `expand materializes every layer's weights (base + B·A) and writes DIR/model.safetensors under
the original tensor names and dtypes, plus DIR/config.json, so the result loads like the original.`,
		Example: `  vlora-convert expand ./bytellama-vlora --out ./bytellama-dense`,
		Args:    cobra.ExactArgs(1),
		RunE:    runE(o),
	}
	cmd.Flags().StringVar(&o.out, "out", "", "output directory (required)")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete takes the file argument.
func (o *expandOptions) Complete(_ *cobra.Command, args []string) error {
	o.in = args[0]
	return nil
}

// Validate has nothing to check beyond the required flag.
func (o *expandOptions) Validate() error { return nil }

// Run writes the dense checkpoint.
func (o *expandOptions) Run(ctx context.Context) error {
	if err := convert.Expand(ctx, o.in, o.out); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "wrote %s\n", o.out)
	return nil
}
