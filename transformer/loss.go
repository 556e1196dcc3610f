package transformer

import (
	"fmt"
	"math"
	"runtime"

	"github.com/vlora-convert/vlora-convert/formats"
)

// This file holds the losses a training loop needs on top of a forward
// pass: log-softmax, KL(teacher ‖ student) for distillation and next-token
// cross-entropy. Logits are row-major [rows, vocab]; probabilities are
// formed in float32 and every reduction is accumulated in float64.

// LogSoftmax writes the log-softmax of each row of logits ([rows, vocab])
// into dst, which may alias logits.
func LogSoftmax(dst, logits []float32, vocab int) error {
	rows, err := lossRows(len(logits), vocab)
	if err != nil {
		return err
	}
	if len(dst) != len(logits) {
		return fmt.Errorf("transformer: LogSoftmax: %w: dst has %d values, want %d", formats.ErrInvalid, len(dst), len(logits))
	}
	forChunks(runtime.GOMAXPROCS(0), rows, 64, func(_, lo, hi int) {
		e := make([]float32, vocab)
		for r := lo; r < hi; r++ {
			z := logits[r*vocab : r*vocab+vocab]
			lse := rowLogSumExp(z, 1, e)
			d := dst[r*vocab : r*vocab+vocab]
			for j, v := range z {
				d[j] = v - lse
			}
		}
	})
	return nil
}

// KLDiv returns the mean over rows of KL(softmax(teacher/τ) ‖
// softmax(student/τ)), where τ is temperature (1 when not positive). When
// grad is not nil it receives the gradient of that mean with respect to the
// student logits, (p_student − p_teacher)/(τ·rows). Callers that follow
// Hinton's convention multiply loss and gradient by τ².
func KLDiv(teacher, student []float32, vocab int, temperature float64, grad []float32) (float64, error) {
	if len(teacher) != len(student) {
		return 0, fmt.Errorf("transformer: KLDiv: %w: teacher has %d values, student %d", formats.ErrInvalid, len(teacher), len(student))
	}
	return klDiv(teacher, false, student, vocab, temperature, grad)
}

// KLDivLogProbs is KLDiv at temperature 1 with the teacher given as
// log-probabilities (for example cached from LogSoftmax).
func KLDivLogProbs(teacherLogProbs, student []float32, vocab int, grad []float32) (float64, error) {
	if len(teacherLogProbs) != len(student) {
		return 0, fmt.Errorf("transformer: KLDivLogProbs: %w: teacher has %d values, student %d", formats.ErrInvalid, len(teacherLogProbs), len(student))
	}
	return klDiv(teacherLogProbs, true, student, vocab, 1, grad)
}

func klDiv(teacher []float32, teacherIsLogProb bool, student []float32, vocab int, temperature float64, grad []float32) (float64, error) {
	rows, err := lossRows(len(student), vocab)
	if err != nil {
		return 0, err
	}
	if grad != nil && len(grad) != len(student) {
		return 0, fmt.Errorf("transformer: KLDiv: %w: grad has %d values, want %d", formats.ErrInvalid, len(grad), len(student))
	}
	tau := float32(1)
	if temperature > 0 {
		tau = float32(temperature)
	}
	workers := runtime.GOMAXPROCS(0)
	sums := make([]float64, workers)
	gscale := 1 / (tau * float32(rows))
	forChunks(workers, rows, 16, func(c, lo, hi int) {
		es := make([]float32, vocab)
		et := make([]float32, vocab)
		var total float64
		for r := lo; r < hi; r++ {
			zs := student[r*vocab : r*vocab+vocab]
			zt := teacher[r*vocab : r*vocab+vocab]
			lseS := rowLogSumExp(zs, tau, es) // es = exp(zs/τ − max), lseS = log Σ exp(zs/τ)
			var lseT float32
			if teacherIsLogProb {
				for j, v := range zt {
					et[j] = expf(v)
				}
			} else {
				lseT = rowLogSumExp(zt, tau, et)
			}
			sumS, sumT := sum64(es), float64(1)
			if !teacherIsLogProb {
				sumT = sum64(et)
			}
			invS, invT := float32(1/sumS), float32(1/sumT)
			var kl float64
			for j := range zs {
				pt := et[j] * invT
				if pt == 0 {
					continue
				}
				lpt := zt[j]
				if !teacherIsLogProb {
					lpt = zt[j]/tau - lseT
				}
				lps := zs[j]/tau - lseS
				kl += float64(pt) * float64(lpt-lps)
			}
			total += kl
			if grad != nil {
				g := grad[r*vocab : r*vocab+vocab]
				for j := range g {
					g[j] = (es[j]*invS - et[j]*invT) * gscale
				}
			}
		}
		sums[c] = total
	})
	var total float64
	for _, s := range sums {
		total += s
	}
	return total / float64(rows), nil
}

// NextTokenTargets returns the targets of next-token prediction for a
// [batch, seq] block of ids: position t of a row predicts id t+1, and the
// last position of each row has target −1 (ignored).
func NextTokenTargets(ids []int, batch, seq int) []int {
	out := make([]int, batch*seq)
	for b := range batch {
		for t := range seq {
			if t+1 < seq {
				out[b*seq+t] = ids[b*seq+t+1]
			} else {
				out[b*seq+t] = -1
			}
		}
	}
	return out
}

// CrossEntropy returns the mean negative log-likelihood of targets under
// softmax(logits) over the rows whose target is not negative, and the number
// of such rows. When grad is not nil it receives the gradient of that mean
// with respect to the logits (zero on ignored rows).
func CrossEntropy(logits []float32, targets []int, vocab int, grad []float32) (float64, int, error) {
	rows, err := lossRows(len(logits), vocab)
	if err != nil {
		return 0, 0, err
	}
	if len(targets) != rows {
		return 0, 0, fmt.Errorf("transformer: CrossEntropy: %w: %d targets for %d rows", formats.ErrInvalid, len(targets), rows)
	}
	if grad != nil && len(grad) != len(logits) {
		return 0, 0, fmt.Errorf("transformer: CrossEntropy: %w: grad has %d values, want %d", formats.ErrInvalid, len(grad), len(logits))
	}
	count := 0
	for r, t := range targets {
		if t >= vocab {
			return 0, 0, fmt.Errorf("transformer: CrossEntropy: %w: target %d at row %d outside [0,%d)", formats.ErrInvalid, t, r, vocab)
		}
		if t >= 0 {
			count++
		}
	}
	if count == 0 {
		if grad != nil {
			clear(grad)
		}
		return 0, 0, nil
	}
	workers := runtime.GOMAXPROCS(0)
	sums := make([]float64, workers)
	inv := 1 / float32(count)
	forChunks(workers, rows, 16, func(c, lo, hi int) {
		e := make([]float32, vocab)
		var total float64
		for r := lo; r < hi; r++ {
			tgt := targets[r]
			z := logits[r*vocab : r*vocab+vocab]
			if tgt < 0 {
				if grad != nil {
					clear(grad[r*vocab : r*vocab+vocab])
				}
				continue
			}
			lse := rowLogSumExp(z, 1, e)
			total += float64(lse - z[tgt])
			if grad != nil {
				g := grad[r*vocab : r*vocab+vocab]
				is := float32(1 / sum64(e))
				for j := range g {
					g[j] = e[j] * is * inv
				}
				g[tgt] -= inv
			}
		}
		sums[c] = total
	})
	var total float64
	for _, s := range sums {
		total += s
	}
	return total / float64(count), count, nil
}

// rowLogSumExp returns log Σ_j exp(z[j]/τ) and leaves exp(z[j]/τ − max) in
// e.
func rowLogSumExp(z []float32, tau float32, e []float32) float32 {
	if tau == 1 {
		copy(e, z)
	} else {
		for j, v := range z {
			e[j] = v / tau
		}
	}
	m := maxOf(e)
	expSubSum(e, m)
	return m + float32(math.Log(sum64(e)))
}

func sum64(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v)
	}
	return s
}

func lossRows(n, vocab int) (int, error) {
	if vocab <= 0 || n%vocab != 0 {
		return 0, fmt.Errorf("transformer: %w: %d logits do not form rows of %d", formats.ErrInvalid, n, vocab)
	}
	return n / vocab, nil
}
