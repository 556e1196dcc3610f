package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
)

func newExpandCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "expand FILE|DIR --out DIR",
		Short: "Write the dense per-layer weights of a VLoRA file as a Hugging Face checkpoint",
		Long: `expand materializes every layer's weights (base + B·A) and writes DIR/model.safetensors under
the original tensor names and dtypes, plus DIR/config.json, so the result loads like the original.`,
		Example: `  vlora-convert expand ./bytellama-vlora --out ./bytellama-dense`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := convert.Expand(cmd.Context(), args[0], out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "output directory (required)")
	cmd.MarkFlagRequired("out")
	return cmd
}
