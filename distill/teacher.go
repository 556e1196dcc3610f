package distill

import (
	"github.com/vlora-convert/vlora-convert/dataset"
	"github.com/vlora-convert/vlora-convert/transformer"
)

// teacher produces the teacher's log-probabilities for data items, caching
// them per item when the whole cache fits the memory budget, so each item is
// run through the teacher at most once however often it is drawn.
type teacher struct {
	model  *transformer.Model
	data   *dataset.Dataset
	vocab  int
	rows   int // logits rows per item
	cache  [][]float32
	cached bool
	// forwards counts items run through the teacher (for statistics).
	forwards int
}

func newTeacher(m *transformer.Model, data *dataset.Dataset, vocab, rowsPerItem int, budget int64) *teacher {
	t := &teacher{model: m, data: data, vocab: vocab, rows: rowsPerItem}
	if int64(data.N)*int64(rowsPerItem)*int64(vocab)*4 <= budget {
		t.cached = true
		t.cache = make([][]float32, data.N)
	}
	return t
}

// logProbs returns the teacher log-probabilities for the items idx, as one
// [len(idx)·rows, vocab] block, and the hidden states when wantHidden (which
// bypasses the cache).
func (t *teacher) logProbs(idx []int, wantHidden bool) ([]float32, [][]float32, error) {
	per := t.rows * t.vocab
	out := make([]float32, len(idx)*per)
	var missing []int
	for _, i := range idx {
		if !t.cached || t.cache[i] == nil || wantHidden {
			missing = append(missing, i)
		}
	}
	var hidden [][]float32
	if len(missing) > 0 {
		// Deduplicate, run the teacher once per distinct item.
		seen := map[int]int{}
		var uniq []int
		for _, i := range missing {
			if _, ok := seen[i]; !ok {
				seen[i] = len(uniq)
				uniq = append(uniq, i)
			}
		}
		in := t.data.Gather(uniq)
		o, err := t.model.Forward(in, transformer.Options{Hidden: wantHidden})
		if err != nil {
			return nil, nil, err
		}
		t.forwards += len(uniq)
		if err := transformer.LogSoftmax(o.Logits, o.Logits, t.vocab); err != nil {
			return nil, nil, err
		}
		fresh := map[int][]float32{}
		for k, i := range uniq {
			lp := o.Logits[k*per : (k+1)*per]
			fresh[i] = lp
			if t.cached {
				t.cache[i] = append([]float32(nil), lp...)
			}
		}
		for k, i := range idx {
			if lp, ok := fresh[i]; ok {
				copy(out[k*per:(k+1)*per], lp)
			}
		}
		if wantHidden {
			// Arrange hidden states in idx order.
			hs := len(o.HiddenStates)
			hidden = make([][]float32, hs)
			for l := 0; l < hs; l++ {
				w := len(o.HiddenStates[l]) / len(uniq)
				hidden[l] = make([]float32, len(idx)*w)
				for k, i := range idx {
					copy(hidden[l][k*w:(k+1)*w], o.HiddenStates[l][seen[i]*w:(seen[i]+1)*w])
				}
			}
		}
	}
	if t.cached && !wantHidden {
		for k, i := range idx {
			copy(out[k*per:(k+1)*per], t.cache[i])
		}
	}
	return out, hidden, nil
}
