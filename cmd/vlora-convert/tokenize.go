package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// maxTokenizeInput bounds what tokenize reads from its input (256 MiB).
const maxTokenizeInput = 256 << 20

// tokenizeOptions are the options of the tokenize command.
type tokenizeOptions struct {
	streams
	tokenizer                      string
	addSpecial, json, decode, skip bool
}

func newTokenizeCmd(s streams) *cobra.Command {
	o := &tokenizeOptions{streams: s}
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer DIR|FILE [--add-special] [--json] [--decode]",
		Short: "Encode text from stdin into token ids, or decode ids into text",
		Long: `tokenize reads text on stdin and prints its token ids, encoded with a Hugging Face tokenizer.json
(a file, or a model directory holding one) exactly as the Hugging Face tokenizers library does.
--add-special applies the tokenizer's post-processor (BOS, CLS/SEP, ...). The ids are printed on
one line separated by spaces, or as {"ids": [...]} with --json.

With --decode it goes the other way: it reads ids (separated by spaces, commas or newlines, or the
{"ids": [...]} object that --json prints) and prints their text followed by one newline.`,
		Example: `  echo -n "Hello world" | vlora-convert tokenize --tokenizer ./Llama-3.2-1B --add-special --json
  echo "9906 1917" | vlora-convert tokenize --tokenizer ./Llama-3.2-1B --decode`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer.json, or a model directory holding one (required)")
	fl.BoolVar(&o.addSpecial, "add-special", false, "add the special tokens of the post-processor (BOS, CLS/SEP, ...)")
	fl.BoolVar(&o.json, "json", false, `print {"ids": [...]}`)
	fl.BoolVar(&o.decode, "decode", false, "read ids and print their text")
	fl.BoolVar(&o.skip, "skip-special", false, "with --decode, leave special tokens out of the text")
	cmd.MarkFlagRequired("tokenizer")
	return cmd
}

// Complete has nothing to derive.
func (o *tokenizeOptions) Complete(*cobra.Command, []string) error { return nil }

// Validate rejects flags that belong to the other direction.
func (o *tokenizeOptions) Validate() error {
	switch {
	case o.decode && (o.addSpecial || o.json):
		return usagef("%w: --add-special and --json apply to encoding, not to --decode", formats.ErrInvalid)
	case !o.decode && o.skip:
		return usagef("%w: --skip-special applies to --decode", formats.ErrInvalid)
	}
	return nil
}

// Run reads stdin, encodes or decodes it and prints the result.
func (o *tokenizeOptions) Run(ctx context.Context) error {
	tok, err := tokenizer.Load(o.tokenizer)
	if err != nil {
		return err
	}
	if o.In == nil {
		return usagef("%w: no input stream", formats.ErrInvalid)
	}
	in, err := readStream(ctx, o.In, maxTokenizeInput)
	if err != nil {
		return err
	}
	if o.decode {
		ids, err := parseIDs(string(in), tok.VocabSize())
		if err != nil {
			return err
		}
		// One newline ends the output, as every output of the command ends;
		// the text is everything before it.
		_, err = io.WriteString(o.Out, tok.Decode(ids, o.skip)+"\n")
		return err
	}
	ids, err := tok.EncodeContext(ctx, string(in), o.addSpecial)
	if err != nil {
		return err
	}
	if o.json {
		if ids == nil {
			ids = []int{}
		}
		return json.NewEncoder(o.Out).Encode(struct {
			IDs []int `json:"ids"`
		}{ids})
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	_, err = fmt.Fprintln(o.Out, strings.Join(parts, " "))
	return err
}

// parseIDs reads token ids given as {"ids": [...]} or as integers separated
// by spaces, commas or newlines, and checks them against the vocabulary.
func parseIDs(s string, vocab int) ([]int, error) {
	var ids []int
	if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") {
		var v struct {
			IDs []int `json:"ids"`
		}
		if err := json.Unmarshal([]byte(t), &v); err != nil {
			return nil, fmt.Errorf("%w: reading ids: %v", formats.ErrInvalid, err)
		}
		ids = v.IDs
	} else {
		for _, f := range strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
			id, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not a token id", formats.ErrInvalid, f)
			}
			ids = append(ids, id)
		}
	}
	for i, id := range ids {
		if id < 0 || id >= vocab {
			return nil, fmt.Errorf("%w: id %d at position %d outside the vocabulary [0, %d)", formats.ErrInvalid, id, i, vocab)
		}
	}
	return ids, nil
}

// readStream reads r to its end, at most limit bytes, and returns early
// with ctx's error when ctx is done first (a pipe that never closes does
// not hold the command past Ctrl-C).
func readStream(ctx context.Context, r io.Reader, limit int64) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(io.LimitReader(r, limit+1))
		done <- result{b, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-done:
		if res.err != nil {
			return nil, fmt.Errorf("reading input: %w", res.err)
		}
		if int64(len(res.b)) > limit {
			return nil, usagef("%w: input longer than %d bytes", formats.ErrInvalid, limit)
		}
		return res.b, nil
	}
}
