package distill

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// TestLocalLossMatchesFiniteDifferences checks the gradient of the local
// (block-wise, joint) loss of each compound with respect to its stored
// tensors against central differences, the block inputs held fixed as the
// loss defines them. Step and tolerance are those of
// TestChainMatchesFiniteDifferences (float32 loss of order 1e-2…1).
func TestLocalLossMatchesFiniteDifferences(t *testing.T) {
	for _, base := range []vlora.BaseMode{vlora.BaseMean, vlora.BaseZero} {
		t.Run(string(base), func(t *testing.T) {
			teacher, path, data := tinySetup(t, base)
			vm, err := vlora.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			prm, err := Options{Train: TrainBases, Batch: 3}.resolve()
			if err != nil {
				t.Fatal(err)
			}
			r, err := newRun(teacher, vm, data, prm)
			if err != nil {
				t.Fatal(err)
			}
			ls := &localStage{r: r, teacher: teacher.Net, tt: teacher.Net.NewTrainer(), ts: r.res.Student.Net.NewTrainer()}
			in := data.Gather([]int{0, 5, 7})
			comps := vm.Manifest.Compounds
			if len(comps) < 2 {
				t.Fatalf("%d compounds, want at least 2 (the second one sees the student's own inputs)", len(comps))
			}
			for c, layers := range comps {
				ps := r.st.layerParams(layers)
				bi, err := ls.inputs(in, layers)
				if err != nil {
					t.Fatal(err)
				}
				loss := func() float64 {
					if err := r.res.Student.Materialize(); err != nil {
						t.Fatal(err)
					}
					l, err := ls.terms(bi, layers, ps)
					if err != nil {
						t.Fatal(err)
					}
					return l
				}
				loss()
				grads := map[*param][]float32{}
				for _, p := range ps {
					grads[p] = append([]float32(nil), p.grad...)
				}
				checked := map[string]bool{}
				for _, p := range ps {
					kind := kindOf(p.name)
					if checked[kind] {
						continue
					}
					checked[kind] = true
					for _, i := range []int{0, len(p.data) / 2, len(p.data) - 1} {
						x := p.data[i]
						h := float32(1e-2 * math.Max(1, math.Abs(float64(x))))
						p.data[i] = x + h
						lp := loss()
						p.data[i] = x - h
						lm := loss()
						p.data[i] = x
						num := (lp - lm) / float64(2*h)
						if got := float64(grads[p][i]); math.Abs(num-got) > 3e-2*math.Abs(num)+1e-4 {
							t.Errorf("compound %d %s[%d]: analytic %.6g, numeric %.6g", c, p.name, i, got, num)
						}
					}
				}
				for _, k := range []string{"lora_A", "lora_B", "delta"} {
					if !checked[k] {
						t.Errorf("compound %d: no %s tensor checked", c, k)
					}
				}
				if base != vlora.BaseZero && !checked["base"] {
					t.Errorf("compound %d: no base checked", c)
				}
			}
		})
	}
}

// kindOf classifies a stored tensor name for the gradient checks.
func kindOf(name string) string {
	kind := name
	for _, k := range []string{"norm", "embed", "lm_head", "base", "delta", "lora_A", "lora_B"} {
		if strings.Contains(name, k) {
			kind = k
		}
	}
	return kind
}

// TestLocalStageLowersLocalLoss runs the local stage alone and checks that
// every compound's loss falls, that it logs one entry per step and that
// the model still runs.
func TestLocalStageLowersLocalLoss(t *testing.T) {
	teacher, path, data := tinySetup(t, vlora.BaseMean)
	vm, err := vlora.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 30
	res, err := Run(context.Background(), teacher, vm, data, Options{LocalSteps: steps, Batch: 4, LR: 5e-3, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	comps := len(vm.Manifest.Compounds)
	if len(res.LocalLog) != steps*comps || len(res.Log) != 0 {
		t.Fatalf("%d local and %d global log entries, want %d and 0", len(res.LocalLog), len(res.Log), steps*comps)
	}
	for c := range comps {
		log := res.LocalLog[c*steps : (c+1)*steps]
		first, last := mean(log[:5]), mean(log[steps-5:])
		if !(last < 0.8*first) {
			t.Errorf("compound %d: local loss %.4g → %.4g, want a fall of at least 20%%", c, first, last)
		}
	}
	if _, err := model.FromVLoRA(vm); err != nil {
		t.Fatal(err)
	}
}

func mean(log []Stats) float64 {
	var s float64
	for _, l := range log {
		s += l.Loss
	}
	return s / float64(len(log))
}

// TestTokensSetSteps checks that a token budget gives the fewest steps that
// reach it, and that steps and tokens together are refused.
func TestTokensSetSteps(t *testing.T) {
	teacher, path, data := tinySetup(t, vlora.BaseMean)
	for _, tc := range []struct {
		tokens int64
		want   int
	}{{1, 1}, {40, 1}, {41, 2}, {400, 10}} {
		_, res := run(t, teacher, path, data, Options{Tokens: tc.tokens, Batch: 4, LR: 1e-3})
		// 4 sequences of 10 tokens per step.
		if res.Steps != tc.want || len(res.Log) != tc.want {
			t.Errorf("%d tokens: %d steps (%d logged), want %d", tc.tokens, res.Steps, len(res.Log), tc.want)
		}
	}
	if _, err := (Options{Steps: 3, Tokens: 10}).resolve(); err == nil {
		t.Error("steps and tokens together: no error")
	}
}
