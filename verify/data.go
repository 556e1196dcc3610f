package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// Dataset is a set of model inputs: token sequences [N, T] (with optional
// token types) or images [N, C, H, W], with optional integer labels.
type Dataset struct {
	N, T       int
	IDs        []int // N×T, row-major
	TokenTypes []int // N×T or nil
	Pixels     []float32
	C, H, W    int
	Labels     []int // N or nil
	// Source says where the data came from, for reports.
	Source string
	// SHA256 is the digest of the data file, when there is one.
	SHA256 string
}

// IsImages reports whether the set holds images.
func (d *Dataset) IsImages() bool { return d.Pixels != nil }

// Batch returns items [i, j) as a transformer input.
func (d *Dataset) Batch(i, j int) *transformer.Input {
	in := &transformer.Input{Batch: j - i}
	if d.IsImages() {
		sz := d.C * d.H * d.W
		in.Pixels = d.Pixels[i*sz : j*sz]
		return in
	}
	in.Seq = d.T
	in.IDs = d.IDs[i*d.T : j*d.T]
	if d.TokenTypes != nil {
		in.TokenTypes = d.TokenTypes[i*d.T : j*d.T]
	}
	return in
}

// LoadData reads a safetensors data file holding "tokens" or "input_ids"
// (int [N, T], with optional "token_type_ids") or "pixel_values" (float
// [N, C, H, W]). labels, when not empty, names an int [N] tensor in the same
// file. samples > 0 keeps the first samples items; seqLen > 0 truncates
// sequences to that length.
func LoadData(path, labels string, samples, seqLen int) (*Dataset, error) {
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
	if samples > 0 && samples < d.N {
		d.truncateN(samples)
	}
	if seqLen > 0 && !d.IsImages() && seqLen < d.T {
		d.truncateT(seqLen)
	}
	return d, nil
}

func (d *Dataset) truncateN(n int) {
	if d.IsImages() {
		d.Pixels = d.Pixels[:n*d.C*d.H*d.W]
	} else {
		d.IDs = d.IDs[:n*d.T]
		if d.TokenTypes != nil {
			d.TokenTypes = d.TokenTypes[:n*d.T]
		}
	}
	if d.Labels != nil {
		d.Labels = d.Labels[:n]
	}
	d.N = n
}

func (d *Dataset) truncateT(t int) {
	cut := func(x []int) []int {
		out := make([]int, d.N*t)
		for i := 0; i < d.N; i++ {
			copy(out[i*t:(i+1)*t], x[i*d.T:i*d.T+t])
		}
		return out
	}
	d.IDs = cut(d.IDs)
	if d.TokenTypes != nil {
		d.TokenTypes = cut(d.TokenTypes)
	}
	d.T = t
}

// CheckRange verifies that token ids fit the vocabulary.
func (d *Dataset) CheckRange(vocab, typeVocab int) error {
	for i, v := range d.IDs {
		if v < 0 || (vocab > 0 && v >= vocab) {
			return fmt.Errorf("%s: %w: token %d at position %d outside the vocabulary [0, %d)", d.Source, formats.ErrInvalid, v, i, vocab)
		}
	}
	for i, v := range d.TokenTypes {
		if v < 0 || (typeVocab > 0 && v >= typeVocab) {
			return fmt.Errorf("%s: %w: token type %d at position %d outside [0, %d)", d.Source, formats.ErrInvalid, v, i, typeVocab)
		}
	}
	return nil
}

// SampleLM draws n sequences of length t from a causal LM by ancestral
// sampling at temperature 1, starting from the config's bos_token_id (0 when
// absent). The same seed gives the same sequences. Causal LMs are decoded
// incrementally with a key/value cache; a model the decoder does not support
// is run on the whole prefix at every position instead.
func SampleLM(ctx context.Context, m *transformer.Model, cfg *formats.Config, n, t int, seed uint64) (*Dataset, error) {
	if n <= 0 || t <= 0 {
		return nil, fmt.Errorf("%w: cannot sample %d sequences of %d tokens", formats.ErrInvalid, n, t)
	}
	bos := cfg.Int("bos_token_id")
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	ids := make([]int, n*t)
	for i := 0; i < n; i++ {
		ids[i*t] = bos
	}
	// next returns the [n, vocab] logits that follow the first pos tokens
	// of every sequence.
	var next func(pos int) ([]float32, error)
	dec, err := m.NewDecoder(n, t)
	switch {
	case err == nil:
		col := make([]int, n)
		next = func(pos int) ([]float32, error) {
			for i := range col {
				col[i] = ids[i*t+pos-1]
			}
			return dec.Step(col)
		}
	case errors.Is(err, transformer.ErrNotCausal):
		cur := make([]int, 0, n*t)
		next = func(pos int) ([]float32, error) {
			cur = cur[:0]
			for i := 0; i < n; i++ {
				cur = append(cur, ids[i*t:i*t+pos]...)
			}
			out, err := m.Forward(&transformer.Input{Batch: n, Seq: pos, IDs: cur}, transformer.Options{})
			if err != nil {
				return nil, err
			}
			if len(out.LogitsShape) != 3 {
				return nil, fmt.Errorf("%w: the model gives no next-token logits", formats.ErrInvalid)
			}
			v := out.LogitsShape[2]
			last := make([]float32, n*v)
			for i := 0; i < n; i++ {
				copy(last[i*v:(i+1)*v], out.Logits[(i*pos+pos-1)*v:(i*pos+pos)*v])
			}
			return last, nil
		}
	default:
		return nil, fmt.Errorf("sampling %d×%d tokens: %w", n, t, err)
	}
	for pos := 1; pos < t; pos++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		logits, err := next(pos)
		if err != nil {
			return nil, err
		}
		v := len(logits) / n
		for i := 0; i < n; i++ {
			ids[i*t+pos] = sample(logits[i*v:(i+1)*v], rng)
		}
	}
	return &Dataset{N: n, T: t, IDs: ids, Source: fmt.Sprintf("%d sequences of %d tokens sampled from the original model (seed %d)", n, t, seed)}, nil
}

// sample draws an index from softmax(logits).
func sample(logits []float32, rng *rand.Rand) int {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	u := rng.Float64() * sum
	for i, v := range logits {
		u -= math.Exp(float64(v) - mx)
		if u <= 0 {
			return i
		}
	}
	return len(logits) - 1
}

// RandomInputs draws n seeded random inputs for encoders and image models:
// uniform token ids (token types 0) of length t, or standard-normal images.
func RandomInputs(cfg *formats.Config, n, t int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	if cfg.ModelType == "vit" || cfg.Int("image_size") > 0 {
		c, s := max(cfg.Int("num_channels"), 1), cfg.Int("image_size")
		px := make([]float32, n*c*s*s)
		for i := range px {
			px[i] = float32(rng.NormFloat64())
		}
		return &Dataset{N: n, C: c, H: s, W: s, Pixels: px,
			Source: fmt.Sprintf("%d random normal images (seed %d)", n, seed)}
	}
	ids := make([]int, n*t)
	for i := range ids {
		ids[i] = rng.IntN(max(cfg.VocabSize, 1))
	}
	return &Dataset{N: n, T: t, IDs: ids, Source: fmt.Sprintf("%d random token sequences of length %d (seed %d)", n, t, seed)}
}
