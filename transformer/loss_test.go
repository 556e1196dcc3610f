package transformer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// lossTol bounds the float32 losses and gradients against float64
// references: probabilities are float32 (relative error ~1e-7 each) and
// sums float64, so 1e-5 is ample while any formula error is of order 1.
const lossTol = 1e-5

func refLogSoftmax(z []float64, tau float64) []float64 {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v/tau)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v/tau - mx)
	}
	out := make([]float64, len(z))
	for i, v := range z {
		out[i] = v/tau - mx - math.Log(s)
	}
	return out
}

func refKL(teacher, student []float64, vocab int, tau float64) float64 {
	var total float64
	rows := len(student) / vocab
	for r := range rows {
		lt := refLogSoftmax(teacher[r*vocab:(r+1)*vocab], tau)
		ls := refLogSoftmax(student[r*vocab:(r+1)*vocab], tau)
		for j := range lt {
			total += math.Exp(lt[j]) * (lt[j] - ls[j])
		}
	}
	return total / float64(rows)
}

func TestKLDiv(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const rows, vocab = 6, 21
	teacher := randSlice(rng, rows*vocab, 3)
	student := randSlice(rng, rows*vocab, 3)
	t64, s64 := to64(teacher), to64(student)
	for _, tau := range []float64{1, 2.5} {
		t.Run(fmt.Sprintf("tau %g", tau), func(t *testing.T) {
			grad := make([]float32, rows*vocab)
			kl, err := KLDiv(teacher, student, vocab, tau, grad)
			if err != nil {
				t.Fatal(err)
			}
			want := refKL(t64, s64, vocab, tau)
			if math.Abs(kl-want) > lossTol*want {
				t.Errorf("τ=%g: KL = %.8g, want %.8g", tau, kl, want)
			}
			num := numGrad(s64, func(v []float64) float64 { return refKL(t64, v, vocab, tau) })
			if e := relErr64(to64(grad), num); e > lossTol {
				t.Errorf("τ=%g: gradient rel err %.2e", tau, e)
			}
		})
	}
	// Teacher given as log-probabilities.
	lp := make([]float32, rows*vocab)
	if err := LogSoftmax(lp, teacher, vocab); err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		ref := refLogSoftmax(t64[r*vocab:(r+1)*vocab], 1)
		if e := relErr64(to64(lp[r*vocab:(r+1)*vocab]), ref); e > lossTol {
			t.Errorf("LogSoftmax row %d rel err %.2e", r, e)
		}
	}
	g1, g2 := make([]float32, rows*vocab), make([]float32, rows*vocab)
	k1, _ := KLDiv(teacher, student, vocab, 1, g1)
	k2, err := KLDivLogProbs(lp, student, vocab, g2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(k1-k2) > lossTol*k1 || relErr(g2, g1) > lossTol {
		t.Errorf("KLDivLogProbs = %g (grad err %.2e), KLDiv = %g", k2, relErr(g2, g1), k1)
	}
	// Identical distributions give zero loss and gradient.
	if k, _ := KLDiv(student, student, vocab, 1, g1); math.Abs(k) > 1e-7 {
		t.Errorf("KL(p‖p) = %g", k)
	}
	if _, err := KLDiv(teacher[:vocab], student, vocab, 1, nil); err == nil {
		t.Error("mismatched lengths accepted")
	}
	if _, err := KLDiv(teacher, student, vocab+1, 1, nil); err == nil {
		t.Error("ragged rows accepted")
	}
}

func TestCrossEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	const B, T, vocab = 2, 5, 7
	ids := make([]int, B*T)
	for i := range ids {
		ids[i] = rng.IntN(vocab)
	}
	targets := NextTokenTargets(ids, B, T)
	if targets[T-1] != -1 || targets[0] != ids[1] || targets[T] != ids[T+1] {
		t.Fatalf("NextTokenTargets = %v for %v", targets, ids)
	}
	logits := randSlice(rng, B*T*vocab, 2)
	ref := func(z []float64) float64 {
		var s float64
		n := 0
		for r, tg := range targets {
			if tg < 0 {
				continue
			}
			s -= refLogSoftmax(z[r*vocab:(r+1)*vocab], 1)[tg]
			n++
		}
		return s / float64(n)
	}
	grad := make([]float32, len(logits))
	nll, count, err := CrossEntropy(logits, targets, vocab, grad)
	if err != nil {
		t.Fatal(err)
	}
	if count != B*(T-1) {
		t.Errorf("count %d, want %d", count, B*(T-1))
	}
	z := to64(logits)
	if want := ref(z); math.Abs(nll-want) > lossTol*want {
		t.Errorf("NLL = %.8g, want %.8g", nll, want)
	}
	if e := relErr64(to64(grad), numGrad(z, ref)); e > lossTol {
		t.Errorf("gradient rel err %.2e", e)
	}
	bad := append([]int(nil), targets...)
	bad[0] = vocab
	if _, _, err := CrossEntropy(logits, bad, vocab, nil); err == nil {
		t.Error("target outside the vocabulary accepted")
	}
}
