package transformer

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

// decodeTol bounds the relative difference between the logits of a decoding
// step and those of Forward at the same position. A step performs Forward's
// float32 operations for its position in the same order (see minRows), so
// the two agree exactly with the present kernels. The bound admits the
// rounding differences of a differently grouped sum (Sgemm's matrix-vector
// path moves these logits by 1e-6 to 7e-6, and stories260K's by up to
// 1.2e-5 at batch 1, which minRows avoids) and rejects real faults (a wrong
// position, a stale or misplaced cache entry, a dropped bias), which show up
// at 1e-3 and above.
const decodeTol = 1e-5

// decodeCase is a causal LM with the token batch to decode. load runs
// inside the subtest, so that missing shared material skips only its own.
type decodeCase struct {
	name string
	load func(t *testing.T) (*Model, *Input)
}

// randomIDs returns a batch of B seeded uniform token sequences of length T.
func randomIDs(m *Model, B, T int, seed uint64) *Input {
	rng := rand.New(rand.NewPCG(seed, 7))
	ids := make([]int, B*T)
	for i := range ids {
		ids[i] = rng.IntN(m.net.vocab)
	}
	return &Input{Batch: B, Seq: T, IDs: ids}
}

// decodeCases returns the golden checkpoints of the causal LMs and the
// random tiny causal models with every optional bias. The shared models
// decode their golden inputs (2×256 tokens of text); the tiny fixtures,
// whose golden inputs are 16 tokens long, decode random tokens over their
// whole position range.
func decodeCases(t *testing.T) []decodeCase {
	t.Helper()
	var cs []decodeCase
	for _, gc := range goldenCases(t) {
		if gc.name == "bert" || gc.name == "vit" {
			continue
		}
		cs = append(cs, decodeCase{gc.name, func(t *testing.T) (*Model, *Input) {
			m, g := gc.open(t)
			defer g.Close()
			if gc.fullRows {
				return m, randomIDs(m, 3, m.Config.MaxPositions, 1)
			}
			return m, goldenInput(t, g)
		}})
	}
	for _, tc := range tinyConfigs {
		if tc.name == "bert" || tc.name == "vit" {
			continue
		}
		cs = append(cs, decodeCase{"random-" + tc.name, func(t *testing.T) (*Model, *Input) {
			m := randomModel(t, tc.json, tc.untied, 11)
			return m, randomIDs(m, 3, tc.T, 2)
		}})
	}
	return cs
}

// TestDecoderMatchesForward feeds sequences token by token through a
// Decoder and checks the logits of every step against Forward's at that
// position, for the whole batch and for the first soloLen tokens of its
// first sequence alone (the padded single-row case of minRows). A short
// unrelated prefix is decoded and Reset first, so the check also covers
// reuse after Reset.
// soloLen is the length decoded as a batch of one: two attention query
// blocks of Forward, at well under half the cost of the shared models' 256
// positions.
const soloLen = 96

func TestDecoderMatchesForward(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			m, batch := tc.load(t)
			T := batch.Seq
			first := &Input{Batch: 1, Seq: min(T, soloLen), IDs: batch.IDs[:min(T, soloLen)]}
			for _, in := range []*Input{batch, first} {
				worst := checkDecoder(t, m, in)
				t.Logf("%d×%d positions, worst rel err %.2e", in.Batch, in.Seq, worst)
			}
		})
	}
}

// checkDecoder decodes in step by step and compares every step's logits
// with Forward's, failing beyond decodeTol; it returns the largest relative
// error of a sequence's logits at a position.
func checkDecoder(t *testing.T, m *Model, in *Input) float64 {
	t.Helper()
	B, T := in.Batch, in.Seq
	out, err := m.Forward(in, Options{})
	if err != nil {
		t.Fatal(err)
	}
	V := out.LogitsShape[2]
	d, err := m.NewDecoder(B, T)
	if err != nil {
		t.Fatal(err)
	}
	col := make([]int, B)
	for pos := range 3 {
		for b := range col {
			col[b] = (in.IDs[b*T+pos] + 1) % m.net.vocab
		}
		if _, err := d.Step(col); err != nil {
			t.Fatal(err)
		}
	}
	d.Reset()
	var worst float64
	for pos := range T {
		for b := range col {
			col[b] = in.IDs[b*T+pos]
		}
		got, err := d.Step(col)
		if err != nil {
			t.Fatalf("batch %d, position %d: %v", B, pos, err)
		}
		if len(got) != B*V {
			t.Fatalf("batch %d, position %d: %d logits, want %d×%d", B, pos, len(got), B, V)
		}
		for b := range B {
			want := out.Logits[(b*T+pos)*V : (b*T+pos+1)*V]
			e := relErr(got[b*V:(b+1)*V], want)
			worst = max(worst, e)
			if e > decodeTol {
				t.Fatalf("batch %d, sequence %d, position %d: rel err %.3e > %.0e", B, b, pos, e, decodeTol)
			}
		}
	}
	if d.Len() != T {
		t.Errorf("Len = %d after %d steps", d.Len(), T)
	}
	return worst
}

// TestDecoderPrefillMatchesForward prefills the first half of each
// sequence in one pass (Prefill), then decodes the rest step by step, and
// checks the logits after the prefill and after every step against
// Forward's at those positions.
func TestDecoderPrefillMatchesForward(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			m, in := tc.load(t)
			B, T := in.Batch, in.Seq
			out, err := m.Forward(in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			V := out.LogitsShape[2]
			d, err := m.NewDecoder(B, T)
			if err != nil {
				t.Fatal(err)
			}
			k := max(1, T/2)
			head := make([]int, B*k)
			for b := range B {
				copy(head[b*k:(b+1)*k], in.IDs[b*T:b*T+k])
			}
			got, err := d.Prefill(head, k)
			if err != nil {
				t.Fatal(err)
			}
			check := func(pos int, got []float32) {
				t.Helper()
				for b := range B {
					want := out.Logits[(b*T+pos)*V : (b*T+pos+1)*V]
					if e := relErr(got[b*V:(b+1)*V], want); e > decodeTol {
						t.Fatalf("sequence %d, position %d: rel err %.3e > %.0e", b, pos, e, decodeTol)
					}
				}
			}
			check(k-1, got)
			col := make([]int, B)
			for pos := k; pos < T; pos++ {
				for b := range col {
					col[b] = in.IDs[b*T+pos]
				}
				if got, err = d.Step(col); err != nil {
					t.Fatal(err)
				}
				check(pos, got)
			}
			if _, err := d.Prefill(head[:B], 1); !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("prefill beyond maxLen: %v", err)
			}
		})
	}
}

// TestDecoderErrors checks the models and arguments a Decoder rejects.
func TestDecoderErrors(t *testing.T) {
	models := map[string]*Model{}
	for _, tc := range tinyConfigs {
		models[tc.name] = randomModel(t, tc.json, tc.untied, 3)
	}
	models["mistral"] = randomModel(t, `{"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":16,
		"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"intermediate_size":8,"vocab_size":7,
		"sliding_window":8}`, false, 3)
	for _, tc := range []struct {
		name          string
		model         string
		batch, maxLen int
		want          error
	}{
		{"bert encoder", "bert", 1, 4, ErrNotCausal},
		{"vit classifier", "vit", 1, 4, ErrNotCausal},
		{"zero batch", "llama", 0, 4, formats.ErrInvalid},
		{"zero length", "llama", 2, 0, formats.ErrInvalid},
		{"beyond gpt2 positions", "gpt2", 1, 81, formats.ErrInvalid},
		{"beyond sliding window", "mistral", 1, 9, formats.ErrInvalid},
		{"cache too large", "llama", 1 << 20, 1 << 20, formats.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := models[tc.model].NewDecoder(tc.batch, tc.maxLen); !errors.Is(err, tc.want) {
				t.Errorf("%s: NewDecoder(%d, %d) error %v, want %v", tc.name, tc.batch, tc.maxLen, err, tc.want)
			}
		})
	}
	for _, ok := range []struct {
		model  string
		maxLen int
	}{{"gpt2", 80}, {"mistral", 8}} {
		if _, err := models[ok.model].NewDecoder(1, ok.maxLen); err != nil {
			t.Errorf("%s: NewDecoder(1, %d): %v", ok.model, ok.maxLen, err)
		}
	}

	d, err := models["llama"].NewDecoder(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ids  []int
	}{
		{"too few ids", []int{1}},
		{"too many ids", []int{1, 2, 3}},
		{"negative id", []int{1, -1}},
		{"id beyond vocabulary", []int{1, 19}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := d.Step(tc.ids); !errors.Is(err, formats.ErrInvalid) {
				t.Errorf("%s: Step error %v, want formats.ErrInvalid", tc.name, err)
			}
			if d.Len() != 0 {
				t.Fatalf("%s: a rejected step advanced the decoder to %d", tc.name, d.Len())
			}
		})
	}
	for range 2 {
		if _, err := d.Step([]int{1, 2}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Step([]int{1, 2}); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("step beyond maxLen: error %v, want formats.ErrInvalid", err)
	}
	d.Reset()
	if _, err := d.Step([]int{1, 2}); err != nil || d.Len() != 1 {
		t.Errorf("step after Reset: %v, Len %d", err, d.Len())
	}
	if d.Batch() != 2 || d.MaxLen() != 2 {
		t.Errorf("Batch, MaxLen = %d, %d; want 2, 2", d.Batch(), d.MaxLen())
	}
}

// BenchmarkDecodeBytellama measures decoding 64 sequences of 256 tokens of
// the byte corpus with bytellama, one Step per position: the work of
// sampling 64×256 tokens, less the drawing itself.
func BenchmarkDecodeBytellama(b *testing.B) {
	m, err := loadDir(b, sharedDir(b, "models/bytellama"))
	if err != nil {
		b.Fatal(err)
	}
	in := benchTokens(b, 64)
	B, T := in.Batch, in.Seq
	d, err := m.NewDecoder(B, T)
	if err != nil {
		b.Fatal(err)
	}
	col := make([]int, B)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		d.Reset()
		for pos := range T {
			for i := range col {
				col[i] = in.IDs[i*T+pos]
			}
			if _, err := d.Step(col); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportThroughput(b, B*T, cpuTime()-cpu0)
}

// f16CacheTol bounds the relative difference between the logits of a
// decoder with a half-precision cache and Forward's. Each cached key and
// value is rounded to 11 significant bits (relative error ≤ 2⁻¹¹ ≈ 4.9e-4),
// which moves the scores and the attention outputs by about that much
// relative to their magnitude; through the later blocks the logits move by
// up to 6.4e-3 (stories260K; 2.4e-3 on bytellama). Keys stored in the
// wrong order moved the shared models' logits by 5.9e-2 to 8.6e-1 (the
// tiny random fixtures by as little as 5e-3: there the check guards only
// gross faults).
const f16CacheTol = 2e-2

// TestDecoderF16Cache prefills the first half of each sequence and decodes
// the rest step by step with a half-precision cache, and checks every
// step's logits against Forward's within f16CacheTol; the cache takes half
// the bytes of the float32 one.
func TestDecoderF16Cache(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			m, in := tc.load(t)
			B, T := in.Batch, in.Seq
			out, err := m.Forward(in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			V := out.LogitsShape[2]
			d, err := m.NewDecoderWith(B, T, DecoderOptions{F16Cache: true})
			if err != nil {
				t.Fatal(err)
			}
			var f32, f16 int
			d32, err := m.NewDecoder(B, T)
			if err != nil {
				t.Fatal(err)
			}
			for i := range d.cache.k16 {
				f16 += len(d.cache.k16[i]) + len(d.cache.v16[i])
				f32 += 4 * (len(d32.cache.k[i]) + len(d32.cache.v[i]))
			}
			if 2*f16 != f32 {
				t.Errorf("F16 cache of %d bytes, float32 cache of %d", f16, f32)
			}
			k := max(1, T/2)
			head := make([]int, B*k)
			for b := range B {
				copy(head[b*k:(b+1)*k], in.IDs[b*T:b*T+k])
			}
			got, err := d.Prefill(head, k)
			if err != nil {
				t.Fatal(err)
			}
			var worst float64
			check := func(pos int, got []float32) {
				t.Helper()
				for b := range B {
					want := out.Logits[(b*T+pos)*V : (b*T+pos+1)*V]
					e := relErr(got[b*V:(b+1)*V], want)
					worst = max(worst, e)
					if e > f16CacheTol {
						t.Fatalf("sequence %d, position %d: rel err %.3e > %.0e", b, pos, e, f16CacheTol)
					}
				}
			}
			check(k-1, got)
			col := make([]int, B)
			for pos := k; pos < T; pos++ {
				for b := range col {
					col[b] = in.IDs[b*T+pos]
				}
				if got, err = d.Step(col); err != nil {
					t.Fatal(err)
				}
				check(pos, got)
			}
			t.Logf("%d×%d positions, worst rel err %.2e", B, T, worst)
		})
	}
}
