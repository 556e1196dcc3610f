package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
	"github.com/vlora-convert/vlora-convert/internal/outdir"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// expandOptions are the options of the expand command.
type expandOptions struct {
	streams
	in, out         string
	format, dtype   string
	tokenizer, name string
	ggufType        gguf.Type
	force           bool
}

func newExpandCmd(s streams) *cobra.Command {
	o := &expandOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "expand FILE|DIR --out DIR | --format gguf --out FILE",
		Short: "Write the dense weights of a VLoRA file as a Hugging Face checkpoint or a GGUF file",
		Long: `expand materializes every layer's weights (base + B·A) and writes DIR/model.safetensors under
the original tensor names and dtypes, plus DIR/config.json and the tokenizer and generation files
found beside the VLoRA file (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
generation_config.json, preprocessor_config.json), so the result loads and runs (generate, verify)
like the original.

--format gguf writes one GGUF file (version 3) at --out that llama.cpp, ollama and the runtimes
built on them load: the weights under llama.cpp's tensor names (the query and key rows re-ordered
for its rotary layout), the hyper-parameters, and the tokenizer from tokenizer.json (beside the
input, or --tokenizer). The input may also be a dense model directory. --dtype sets the type of
the weight matrices: f16 (default), f32, bf16 or q8_0 (llama.cpp's 8-bit blocks of 32 with an F16
scale; a matrix whose rows are not whole blocks is written f16). Norms and biases stay f32.
Architectures: LlamaForCausalLM and GPT2LMHeadModel.`,
		Example: `  vlora-convert expand ./bytellama-vlora --out ./bytellama-dense
  vlora-convert expand ./bytellama-vlora --format gguf --out bytellama.gguf
  vlora-convert expand ./tinyllama --format gguf --dtype q8_0 --out tinyllama-q8_0.gguf`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	cmd.Flags().StringVar(&o.out, "out", "", "output directory, or the output file with --format gguf (required)")
	cmd.Flags().StringVar(&o.format, "format", "safetensors", "output format: safetensors (a Hugging Face checkpoint) or gguf")
	cmd.Flags().StringVar(&o.dtype, "dtype", "", "GGUF type of the weight matrices: f32, f16, bf16 or q8_0 (default f16; --format gguf only)")
	cmd.Flags().StringVar(&o.tokenizer, "tokenizer", "", "tokenizer.json or a directory holding one (--format gguf; default: beside the input)")
	cmd.Flags().StringVar(&o.name, "name", "", "general.name of the GGUF file (default: the input's base name)")
	cmd.Flags().BoolVar(&o.force, "force", false, "write into --out even when it holds files vlora-convert did not write (those of the same names are replaced)")
	cmd.MarkFlagRequired("out")
	return cmd
}

// Complete takes the file argument.
func (o *expandOptions) Complete(_ *cobra.Command, args []string) error {
	o.in = args[0]
	return nil
}

// Validate checks the format flags and refuses an output that would write
// over the input or into the directory that holds it.
func (o *expandOptions) Validate() error {
	switch o.format {
	case "gguf":
		return o.validateGGUF()
	case "safetensors":
	default:
		return usagef("--format %q: want safetensors or gguf", o.format)
	}
	for _, f := range []struct{ flag, v string }{{"--dtype", o.dtype}, {"--tokenizer", o.tokenizer}, {"--name", o.name}} {
		if f.v != "" {
			return usagef("%s applies only to --format gguf", f.flag)
		}
	}
	inputs := []string{o.in}
	if p, err := vlora.ResolvePath(o.in); err == nil {
		inputs = append(inputs, filepath.Dir(p))
	}
	return guardOutputs("--out", outputFiles(o.out, formats.SingleFile, formats.ConfigFile), inputs...)
}

// validateGGUF checks the GGUF flags and refuses an --out that is a
// directory or one of the files read.
func (o *expandOptions) validateGGUF() error {
	d := o.dtype
	if d == "" {
		d = "f16"
	}
	t, err := gguf.ParseType(d)
	if err != nil {
		return usagef("--dtype %q: want f32, f16, bf16 or q8_0", o.dtype)
	}
	o.ggufType = t
	if st, err := os.Stat(o.out); err == nil && st.IsDir() {
		return usagef("--out %s is a directory; with --format gguf it names the output file", o.out)
	}
	var inputs []string
	if p, err := vlora.ResolvePath(o.in); err == nil && !isDir(o.in) {
		inputs = append(inputs, p)
	} else if isDir(o.in) {
		ents, _ := os.ReadDir(o.in)
		for _, e := range ents {
			inputs = append(inputs, filepath.Join(o.in, e.Name()))
		}
	}
	inputs = append(inputs, o.tokenizer)
	if err := guardOutputs("--out", []string{o.out}, inputs...); err != nil {
		return err
	}
	return outdir.CheckFile("--out", o.out, o.force, outdir.HasPrefix([]byte("GGUF")))
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Run writes the dense checkpoint into the owned output directory, after
// checking that --out does not hold the original the file was made from,
// or the GGUF file (written to a temporary file renamed into place); a
// failed or interrupted run leaves no output it created.
func (o *expandOptions) Run(ctx context.Context) error {
	if o.format == "gguf" {
		err := convert.ExpandGGUF(ctx, o.in, o.out, convert.GGUFOptions{Type: o.ggufType, Tokenizer: o.tokenizer, Name: o.name})
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "wrote %s\n", o.out)
		return nil
	}
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
