package distill

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/transformer"
	"github.com/vlora-convert/vlora-convert/verify"
	"github.com/vlora-convert/vlora-convert/vlora"
)

func TestExperiment(t *testing.T) {
	if os.Getenv("VLORA_EXP") == "" {
		t.Skip("experiment")
	}
	steps, _ := strconv.Atoi(os.Getenv("VLORA_STEPS"))
	model := "../../shared/models/bytellama"
	out := t.TempDir()
	opt := convert.DefaultOptions()
	opt.Base = vlora.BaseMean
	if _, err := convert.Compress(context.Background(), model, out, opt); err != nil {
		t.Fatal(err)
	}
	vm, _ := vlora.Load(out)
	teacher, err := transformer.LoadCheckpoint(model)
	if err != nil {
		t.Fatal(err)
	}
	calib, _ := verify.LoadData("../../shared/data/stdlib-bytes/calib.safetensors", "", 0, 0)
	t0 := time.Now()
	res, err := Run(context.Background(), teacher, vm, calib, Options{Steps: steps, Batch: 16, Progress: func(s Stats) {
		if s.Step%10 == 0 || s.Step == 1 {
			t.Logf("step %d loss %.4f lr %.2g gn %.3g tok/s %.0f", s.Step, s.Loss, s.LR, s.GradNorm, s.TokensPerSec)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("done in %v: final loss %.4f, %.0f tok/s", time.Since(t0), res.FinalLoss, res.TokensPerSecond)
	vm.Save(out + "/model.vlora.safetensors")
	rep, err := verify.Run(context.Background(), model, out, verify.Options{Data: "../../shared/data/stdlib-bytes/eval.safetensors", Samples: 64})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("eval KL %.4f agree %.4f nll %.4f", *rep.KLMean, *rep.Top1Agreement, *rep.NLLCompressed)
}
