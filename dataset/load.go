package dataset

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// LoadOptions configures Load. The zero value keeps the whole file.
type LoadOptions struct {
	// Labels, when not empty, names an int [N] tensor of a safetensors
	// file holding class labels.
	Labels string
	// Samples > 0 keeps the first Samples items.
	Samples int
	// SeqLen > 0 truncates token sequences to that length, and is the
	// length of the windows text is cut into (default DefaultSeqLen,
	// clamped to MaxSeqLen when that is positive).
	SeqLen, MaxSeqLen int

	// Tokenizer encodes text; when nil, it is read from TokenizerPath (a
	// tokenizer.json file or a directory holding one) when the data is
	// text.
	Tokenizer     *tokenizer.Tokenizer
	TokenizerPath string
	// TextField names the string field of a .jsonl line that holds its
	// text (default DefaultTextField).
	TextField string
	// Stride > 0 starts a text window every Stride tokens (Hugging Face's
	// sliding windows); 0 cuts non-overlapping windows, as llama-perplexity
	// does. See Windows.
	Stride int
	// Perplexity keeps the shorter last window of sliding windows, so that
	// every token is scored (see Windows); leave it unset for training
	// data.
	Perplexity bool

	// Preprocessor is the preprocessor_config.json (or a directory holding
	// one) that says how images are resized, rescaled and normalized.
	Preprocessor string
	// LabelsFromFolders labels each image by its folder: the index of the
	// folder's name among the sorted sub-folder names, as torchvision's
	// ImageFolder numbers classes.
	LabelsFromFolders bool
}

// Load reads a data file or directory and records its SHA-256. The type
// selects the reader:
//   - a safetensors file (.safetensors) holds "tokens" or "input_ids" (int
//     [N, T], with optional "token_type_ids") or "pixel_values" (float [N,
//     C, H, W]);
//   - a .txt file, a .jsonl file (one document per line, see
//     LoadOptions.TextField), a directory of .txt files, or a file of
//     another type whose start is UTF-8 text (wiki.test.raw) is text: each
//     document is encoded with the tokenizer, adding the special tokens its
//     post-processor adds, the token streams are joined and cut into
//     windows of SeqLen tokens (see Windows);
//   - a directory of PNG and JPEG images, directly or in one sub-folder per
//     class, is an image set, preprocessed as LoadOptions.Preprocessor says
//     (see LoadImages).
//
// The SHA-256 of a directory is the digest over its files described at
// hashFiles. Malformed data gives errors wrapping formats.ErrInvalid.
func Load(ctx context.Context, path string, opt LoadOptions) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	if !st.IsDir() && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file or a directory (%s)", path, formats.ErrInvalid, formats.DescribeMode(st.Mode()))
	}
	ext := strings.ToLower(filepath.Ext(path))
	if opt.Labels != "" && (st.IsDir() || ext == ".txt" || ext == ".jsonl") {
		return nil, fmt.Errorf("%s: %w: a labels tensor needs a safetensors data file", path, formats.ErrInvalid)
	}
	var d *Dataset
	var files []string
	switch {
	case st.IsDir():
		d, files, err = loadDir(ctx, path, opt)
	case ext == ".txt" || ext == ".jsonl":
		d, files, err = loadText(ctx, path, opt)
	case ext == ".safetensors":
		d, err = loadSafetensors(path, opt.Labels)
	default:
		switch kind, serr := sniff(path); {
		case serr != nil:
			return nil, serr
		case kind == ".safetensors":
			d, err = loadSafetensors(path, opt.Labels)
		case kind == ".txt" && opt.Labels != "":
			return nil, fmt.Errorf("%s: %w: a labels tensor needs a safetensors data file", path, formats.ErrInvalid)
		case kind == ".txt":
			d, files, err = loadText(ctx, path, opt)
		default:
			return nil, fmt.Errorf("%s: %w: unknown data file type %q (want .safetensors, .txt, .jsonl, UTF-8 text or a directory)", path, formats.ErrInvalid, ext)
		}
	}
	if err != nil {
		return nil, err
	}
	if opt.Samples > 0 && opt.Samples < d.N {
		d.truncateN(opt.Samples)
	}
	if opt.SeqLen > 0 && !d.IsImages() && opt.SeqLen < d.T {
		d.truncateT(opt.SeqLen)
	}
	if st.IsDir() {
		d.SHA256, err = hashFiles(ctx, path, files)
	} else {
		d.SHA256, _, err = formats.HashFile(ctx, path)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// loadDir reads a directory of text files or of images.
func loadDir(ctx context.Context, dir string, opt LoadOptions) (*Dataset, []string, error) {
	texts, err := filesWithExt(dir, ".txt")
	if err != nil {
		return nil, nil, err
	}
	images, err := filesWithExt(dir, imageExts...)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case len(texts) > 0 && len(images) > 0:
		return nil, nil, fmt.Errorf("%s: %w: holds both .txt files and images", dir, formats.ErrInvalid)
	case len(texts) > 0:
		return loadText(ctx, dir, opt)
	case len(images) > 0:
		return loadImageDir(ctx, dir, opt)
	}
	return nil, nil, fmt.Errorf("%s: %w: no .txt files and no images (%s)", dir, formats.ErrInvalid, strings.Join(imageExts, ", "))
}

// loadSafetensors reads a safetensors data file; labels, when not empty,
// names its labels tensor.
func loadSafetensors(path, labels string) (*Dataset, error) {
	f, err := formats.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &Dataset{Source: path}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", path, formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	var name string
	for _, n := range []string{"tokens", "input_ids", "pixel_values"} {
		if _, ok := f.Info(n); ok {
			name = n
			break
		}
	}
	switch name {
	case "":
		return nil, bad("no tensor named tokens, input_ids or pixel_values")
	case "pixel_values":
		ti, _ := f.Info(name)
		if len(ti.Shape) != 4 {
			return nil, bad("pixel_values has shape %v, want [N, C, H, W]", ti.Shape)
		}
		px, err := f.ReadFloat32(name)
		if err != nil {
			return nil, err
		}
		d.N, d.C, d.H, d.W = ti.Shape[0], ti.Shape[1], ti.Shape[2], ti.Shape[3]
		d.Pixels = px
	default:
		ti, _ := f.Info(name)
		if len(ti.Shape) != 2 || !formats.IsInt(ti.DType) {
			return nil, bad("%s is %s%v, want an integer [N, T] tensor", name, ti.DType, ti.Shape)
		}
		ids, err := f.ReadInts(name)
		if err != nil {
			return nil, err
		}
		d.N, d.T, d.IDs = ti.Shape[0], ti.Shape[1], ids
		if tt, ok := f.Info("token_type_ids"); ok {
			if len(tt.Shape) != 2 || tt.Shape[0] != d.N || tt.Shape[1] != d.T {
				return nil, bad("token_type_ids has shape %v, want %v", tt.Shape, ti.Shape)
			}
			if d.TokenTypes, err = f.ReadInts("token_type_ids"); err != nil {
				return nil, err
			}
		}
	}
	if labels != "" {
		li, ok := f.Info(labels)
		if !ok {
			return nil, bad("no labels tensor %q", labels)
		}
		if li.NumElements() != d.N || !formats.IsInt(li.DType) {
			return nil, bad("labels %q is %s%v, want int [%d]", labels, li.DType, li.Shape, d.N)
		}
		if d.Labels, err = f.ReadInts(labels); err != nil {
			return nil, err
		}
	}
	if d.N == 0 {
		return nil, bad("the data set is empty")
	}
	return d, nil
}

// sniffBytes is how much of a file without a known extension sniff reads.
const sniffBytes = 64 << 10

// sniff tells the type of a data file from its start: ".safetensors" for a
// safetensors header (a little-endian length, then a JSON object), ".txt"
// for UTF-8 text, "" otherwise.
func sniff(path string) (string, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b := make([]byte, sniffBytes)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	b = b[:n]
	if len(b) >= 10 && b[8] == '{' && binary.LittleEndian.Uint64(b) < 1<<30 {
		return ".safetensors", nil
	}
	if len(b) == 0 || bytes.IndexByte(b, 0) >= 0 {
		return "", nil
	}
	// The read may end inside a character.
	for cut := 0; cut < utf8.UTFMax && cut < len(b); cut++ {
		if utf8.Valid(b[:len(b)-cut]) {
			return ".txt", nil
		}
	}
	return "", nil
}
