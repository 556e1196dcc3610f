package dataset

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// Text limits.
const (
	// MaxTextBytes bounds the text read from a data file or directory
	// (256 MiB).
	MaxTextBytes = 256 << 20
	// maxWindowTokens bounds the tokens of all windows together (1 GiB of
	// int ids), which overlapping windows multiply.
	maxWindowTokens = 1 << 27
	// DefaultTextField is the field of a .jsonl line that holds its text.
	DefaultTextField = "text"
)

// maxJSONLLine bounds one line of a .jsonl file (64 MiB); tests shorten
// it.
var maxJSONLLine = 64 << 20

// Span is the range [From, To) of positions of a sequence.
type Span struct{ From, To int }

// textOptions is what loading text needs from LoadOptions, resolved.
type textOptions struct {
	tok        *tokenizer.Tokenizer
	seqLen     int
	stride     int
	perplexity bool
}

// resolveText loads the tokenizer and fixes the window length of text data.
func resolveText(opt LoadOptions) (textOptions, error) {
	to := textOptions{tok: opt.Tokenizer, seqLen: SeqLen(opt.SeqLen, DefaultSeqLen, opt.MaxSeqLen),
		stride: opt.Stride, perplexity: opt.Perplexity}
	if to.seqLen < 2 {
		return to, fmt.Errorf("%w: text windows of %d tokens leave nothing to predict", formats.ErrInvalid, to.seqLen)
	}
	if to.stride < 0 || to.stride > to.seqLen {
		return to, fmt.Errorf("%w: stride %d must be in [1, %d] (the window length)", formats.ErrInvalid, to.stride, to.seqLen)
	}
	if to.tok == nil {
		if opt.TokenizerPath == "" {
			return to, fmt.Errorf("%w: text data needs a tokenizer (tokenizer.json in the model directory, or --tokenizer)", formats.ErrInvalid)
		}
		var err error
		if to.tok, err = tokenizer.Load(opt.TokenizerPath); err != nil {
			return to, err
		}
	}
	return to, nil
}

// readDocuments reads the documents of a text data source: a .txt file (one
// document), a .jsonl file (one document per line, the string field named
// field), or a directory, whose .txt files (symbolic links to regular
// files included), in lexical order of their relative paths, are one
// document each. It also returns the files read. Each file must be a
// regular file; a .txt file must be UTF-8 text (see CheckText).
func readDocuments(ctx context.Context, path, field string) (docs []string, files []string, err error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if st.IsDir() {
		files, err = filesWithExt(path, ".txt")
		if err != nil {
			return nil, nil, err
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("%s: %w: no .txt files", path, formats.ErrInvalid)
		}
	} else {
		files = []string{path}
	}
	var total int64
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		b, err := readBounded(f, MaxTextBytes-total)
		if err != nil {
			return nil, nil, err
		}
		total += int64(len(b))
		if err := CheckText(f, b); err != nil {
			return nil, nil, err
		}
		if strings.EqualFold(filepath.Ext(f), ".jsonl") {
			lines, err := jsonlTexts(ctx, f, b, cmp.Or(field, DefaultTextField))
			if err != nil {
				return nil, nil, err
			}
			docs = append(docs, lines...)
		} else {
			docs = append(docs, string(b))
		}
	}
	return docs, files, nil
}

// readBounded reads the regular file at path, refusing one longer than
// limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %w: text data beyond %d bytes in all", path, formats.ErrInvalid, MaxTextBytes)
	}
	return b, nil
}

// jsonlTexts returns the string field of every non-blank line of a .jsonl
// file's content b.
func jsonlTexts(ctx context.Context, path string, b []byte, field string) ([]string, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, maxJSONLLine)
	var out []string
	line := 1
	for ; sc.Scan(); line++ {
		if line%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, fmt.Errorf("%s:%d: %w: %v", path, line, formats.ErrInvalid, err)
		}
		v, ok := obj[field]
		if !ok {
			return nil, fmt.Errorf("%s:%d: %w: no %q field", path, line, formats.ErrInvalid, field)
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, fmt.Errorf("%s:%d: %w: field %q is not a string", path, line, formats.ErrInvalid, field)
		}
		out = append(out, s)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("%s:%d: %w: line longer than %d bytes (the limit of one line)", path, line, formats.ErrInvalid, maxJSONLLine)
	} else if err != nil {
		return nil, fmt.Errorf("%s:%d: %w: %v", path, line, formats.ErrInvalid, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: no lines", path, formats.ErrInvalid)
	}
	return out, nil
}

// loadText reads text data (see readDocuments), encodes every document with
// the post-processor's special tokens, joins the token streams and cuts them
// into windows (see Windows).
func loadText(ctx context.Context, path string, opt LoadOptions) (*Dataset, []string, error) {
	to, err := resolveText(opt)
	if err != nil {
		return nil, nil, err
	}
	docs, files, err := readDocuments(ctx, path, opt.TextField)
	if err != nil {
		return nil, nil, err
	}
	var tokens []int
	for i, d := range docs {
		ids, err := to.tok.EncodeContext(ctx, d, true)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: tokenizing: %w", docName(path, files, i, len(docs)), err)
		}
		tokens = append(tokens, ids...)
	}
	d, err := Windows(tokens, to.seqLen, to.stride, addedBOS(to.tok), to.perplexity)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	d.Source = path
	return d, files, nil
}

// docName names document i of the n read from path: its file, or, for
// the lines of a .jsonl file, the file and the document's number.
func docName(path string, files []string, i, n int) string {
	if len(files) == n {
		return files[i]
	}
	return fmt.Sprintf("%s (document %d)", path, i+1)
}

// addedBOS returns the BOS token when the tokenizer's post-processor puts
// one before a sequence, and -1 otherwise.
func addedBOS(tok *tokenizer.Tokenizer) int {
	if b := tok.BOS(); b >= 0 {
		if ids := tok.Encode("", true); len(ids) > 0 && ids[0] == b {
			return b
		}
	}
	return -1
}

// Windows cuts a token stream into sequences of t tokens and records in
// Score which next-token targets of each are scored, so that a perplexity
// over the scored targets follows one of two known methods.
//
// With stride 0 the windows do not overlap, as llama.cpp's llama-perplexity
// cuts them: window k is tokens [k·t, (k+1)·t), its first token replaced by
// bos when bos ≥ 0, and its targets [t/2+1, t) are scored (the second half,
// each predicted with at least t/2 tokens of context). A tail shorter than t
// is dropped.
//
// With 0 < stride ≤ t the windows start every stride tokens, as in Hugging
// Face's sliding-window perplexity: each window scores the targets no
// earlier window scored, with the rest of the window as context; the first
// window scores targets [1, t). With perplexity set, a last window shorter
// than t covers the tail, as Hugging Face's does; it is padded at its end
// with token 0, which a causal model's scored positions never see. Without
// perplexity (training data) only whole windows are kept.
func Windows(tokens []int, t, stride, bos int, perplexity bool) (*Dataset, error) {
	if t < 2 || stride < 0 || stride > t {
		return nil, fmt.Errorf("%w: windows of %d tokens every %d", formats.ErrInvalid, t, stride)
	}
	if len(tokens) < t {
		return nil, fmt.Errorf("%w: the text has %d tokens, fewer than one window of %d", formats.ErrInvalid, len(tokens), t)
	}
	step := cmp.Or(stride, t)
	if windows := (len(tokens)-t)/step + 2; windows > maxWindowTokens/t {
		return nil, fmt.Errorf("%w: %d tokens in windows of %d every %d make more than %d window tokens; use a larger stride or less text", formats.ErrInvalid, len(tokens), t, step, maxWindowTokens)
	}
	d := &Dataset{T: t}
	if stride == 0 {
		for k := 0; (k+1)*t <= len(tokens); k++ {
			w := tokens[k*t : (k+1)*t]
			d.IDs = append(d.IDs, w...)
			if bos >= 0 {
				d.IDs[k*t] = bos
			}
			d.Score = append(d.Score, Span{t/2 + 1, t})
		}
		d.N = len(d.Score)
		return d, nil
	}
	end := 0 // targets before end are scored
	for b := 0; end < len(tokens); b += stride {
		e := min(b+t, len(tokens))
		if e-b < t && !perplexity {
			break
		}
		d.IDs = append(d.IDs, tokens[b:e]...)
		for range t - (e - b) {
			d.IDs = append(d.IDs, 0)
		}
		d.Score = append(d.Score, Span{max(end, b+1) - b, e - b})
		end = e
	}
	d.N = len(d.Score)
	return d, nil
}

// filesWithExt lists the files under dir whose names end in one of exts
// (case-insensitive), in lexical order of their paths. dir itself may be
// a symbolic link to a directory. Symbolic links to regular files are
// followed (listed under the link's path); a matching
// entry that is not a regular file (a FIFO, a device, a broken link), and a
// symbolic link to a directory, which is not walked, are errors wrapping
// formats.ErrInvalid rather than skipped.
func filesWithExt(dir string, exts ...string) ([]string, error) {
	var files []string
	// With a trailing separator the walk starts inside dir also when dir
	// itself is a symbolic link to a directory.
	root := dir
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		match := false
		for _, x := range exts {
			match = match || strings.EqualFold(filepath.Ext(p), x)
		}
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			st, err := os.Stat(p)
			switch {
			case err != nil && match:
				return fmt.Errorf("%s: %w: broken symbolic link: %v", p, formats.ErrInvalid, err)
			case err != nil:
				return nil
			case st.IsDir():
				return fmt.Errorf("%s: %w: symbolic link to a directory (not followed; link the files instead)", p, formats.ErrInvalid)
			}
			mode = st.Mode().Type()
		}
		if !match {
			return nil
		}
		if !mode.IsRegular() {
			return fmt.Errorf("%s: %w: not a regular file (%s)", p, formats.ErrInvalid, formats.DescribeMode(mode))
		}
		files = append(files, p)
		return nil
	})
	slices.Sort(files)
	return files, err
}

// hashFiles returns the digest of data read from several files under dir:
// the SHA-256 of the lines "<SHA-256 of the file>  <path relative to dir>\n"
// in lexical order of the paths (with / separators), which is what
//
//	cd DIR && find -L . -type f | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum | sha256sum
//
// prints when DIR holds only those files.
func hashFiles(ctx context.Context, dir string, files []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		sum, _, err := formats.HashFile(ctx, f)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(dir, f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s  %s\n", sum, filepath.ToSlash(rel))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
