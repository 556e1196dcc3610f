package verify

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// windowScores runs m on ids alone and returns the log-probabilities of the
// rows that predict targets [from, to) of ids.
func windowScores(t *testing.T, m *model.Model, ids []int, from, to int) [][]float64 {
	t.Helper()
	out, err := m.Net.Forward(&transformer.Input{Batch: 1, Seq: len(ids), IDs: ids}, transformer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v := out.LogitsShape[2]
	var rows [][]float64
	for j := from; j < to; j++ {
		lp := make([]float64, v)
		logSoftmax(lp, out.Logits[(j-1)*v:j*v])
		rows = append(rows, lp)
	}
	return rows
}

// straightforward is the reference computation: for each window (its
// tokens, and the targets it scores), both models run on the window alone;
// it returns both perplexities, the mean KL over the scored positions and
// their count.
type window struct {
	ids      []int
	from, to int
}

func straightforward(t *testing.T, orig, comp *model.Model, windows []window) (pplO, pplC, kl float64, n int) {
	var nllO, nllC float64
	for _, w := range windows {
		lo, lc := windowScores(t, orig, w.ids, w.from, w.to), windowScores(t, comp, w.ids, w.from, w.to)
		for i := range lo {
			target := w.ids[w.from+i]
			nllO -= lo[i][target]
			nllC -= lc[i][target]
			kl += KL(lo[i], lc[i])
			n++
		}
	}
	return math.Exp(nllO / float64(n)), math.Exp(nllC / float64(n)), kl / float64(n), n
}

// TestTextPerplexityMethods checks verify's perplexity and KL on a text
// file against straightforward computations of both methods on bytellama
// (byte tokenizer, no BOS): llama-perplexity's non-overlapping windows
// scoring their second half, and Hugging Face's sliding windows, written
// as Hugging Face's documentation loop (a shorter last window). The
// tolerance, 1e-5 relative, covers float32 rounding differences between a
// batch of windows and one window at a time.
func TestTextPerplexityMethods(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	full, err := os.ReadFile(testenv.Shared(t, "data/stdlib-text/eval.txt"))
	if err != nil {
		t.Fatal(err)
	}
	text := full[:1000]
	path := filepath.Join(t.TempDir(), "eval.txt")
	os.WriteFile(path, text, 0o644)
	tokens := make([]int, len(text))
	for i, b := range text {
		tokens[i] = int(b)
	}
	orig, err := model.LoadDense(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	opt := convert.Options{CompoundSize: 4, Rank: 8}
	if _, err := convert.Compress(context.Background(), dir, out, opt); err != nil {
		t.Fatal(err)
	}
	comp, err := model.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	const T = 96
	var llama, hf []window
	for k := 0; (k+1)*T <= len(tokens); k++ {
		llama = append(llama, window{tokens[k*T : (k+1)*T], T/2 + 1, T})
	}
	const stride = 40
	prevEnd := 0
	for begin := 0; begin < len(tokens); begin += stride {
		end := min(begin+T, len(tokens))
		trg := end - prevEnd
		w := tokens[begin:end]
		hf = append(hf, window{w, max(len(w)-trg, 1), len(w)})
		prevEnd = end
		if end == len(tokens) {
			break
		}
	}
	for _, tc := range []struct {
		name    string
		stride  int
		windows []window
	}{{"llama-perplexity", 0, llama}, {"sliding", stride, hf}} {
		t.Run(tc.name, func(t *testing.T) {
			pplO, pplC, kl, n := straightforward(t, orig, comp, tc.windows)
			rep, err := Run(context.Background(), orig, comp, Options{Data: path, SeqLen: T, Stride: tc.stride, Batch: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: PPL %.4f / %.4f, KL %.4f over %d positions (%s)", tc.name, pplO, pplC, kl, n, rep.PerplexityMethod)
			if rep.Positions != n {
				t.Errorf("%d positions scored, want %d", rep.Positions, n)
			}
			for _, c := range []struct {
				name      string
				got, want float64
			}{{"PPL original", *rep.PPLOriginal, pplO}, {"PPL compressed", *rep.PPLCompressed, pplC}, {"KL mean", *rep.KLMean, kl}} {
				if math.Abs(c.got-c.want) > 1e-5*math.Abs(c.want) {
					t.Errorf("%s %.8g, straightforward %.8g", c.name, c.got, c.want)
				}
			}
		})
	}
}
