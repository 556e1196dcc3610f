package main

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/vlora-convert/vlora-convert/distill"
	"github.com/vlora-convert/vlora-convert/formats"
)

// writeLossCSV writes one row per step of the local stage, then of the
// global stage: stage (local or global), step, compound (local steps), loss,
// lr, grad_norm, tokens, seconds, tokens_per_second. Local losses are the
// block-wise relative squared errors, global ones KL plus the hidden-state
// term.
func writeLossCSV(path string, res *distill.Result) error {
	var b bytes.Buffer
	b.WriteString("stage,step,compound,loss,lr,grad_norm,tokens,seconds,tokens_per_second\n")
	for _, s := range res.LocalLog {
		fmt.Fprintf(&b, "local,%d,%d,%.6f,%.6g,%.6g,,%.3f,\n", s.Step, s.Compound, s.Loss, s.LR, s.GradNorm, s.Elapsed.Seconds())
	}
	for _, s := range res.Log {
		fmt.Fprintf(&b, "global,%d,,%.6f,%.6g,%.6g,%d,%.3f,%.1f\n", s.Step, s.Loss, s.LR, s.GradNorm, s.Tokens, s.Elapsed.Seconds(), s.TokensPerSec)
	}
	return formats.WriteFileAtomic(path, b.Bytes())
}

// writeLossPlot draws the training loss per step (and a 10-step moving
// average) as a PNG; the local stage's steps, when there are any, come
// first, on the same axis, with their own line.
func writeLossPlot(path, title string, res *distill.Result) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step (local stage, then global)"
	p.Y.Label.Text = "global: KL + hidden term; local: block error"
	nl := len(res.LocalLog)
	log := res.Log
	raw := make(plotter.XYs, len(log))
	avg := make(plotter.XYs, len(log))
	var window []float64
	for i, s := range log {
		raw[i].X, raw[i].Y = float64(nl+s.Step), s.Loss
		window = append(window, s.Loss)
		if len(window) > 10 {
			window = window[1:]
		}
		var m float64
		for _, v := range window {
			m += v
		}
		avg[i].X, avg[i].Y = float64(nl+s.Step), m/float64(len(window))
	}
	l1, err := plotter.NewLine(raw)
	if err != nil {
		return err
	}
	l1.Color = plotter.DefaultLineStyle.Color
	l1.Width = vg.Points(0.5)
	l2, err := plotter.NewLine(avg)
	if err != nil {
		return err
	}
	l2.Width = vg.Points(2)
	p.Add(plotter.NewGrid(), l1, l2)
	p.Legend.Add("loss", l1)
	p.Legend.Add("10-step mean", l2)
	if nl > 0 {
		loc := make(plotter.XYs, nl)
		for i, s := range res.LocalLog {
			loc[i].X, loc[i].Y = float64(s.Step), s.Loss
		}
		l3, err := plotter.NewLine(loc)
		if err != nil {
			return err
		}
		l3.Color = color.RGBA{R: 200, G: 80, A: 255}
		p.Add(l3)
		p.Legend.Add("local stage", l3)
	}
	p.Legend.Top = true
	tmp, err := os.CreateTemp(filepath.Dir(path), ".loss-*.png")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if err := p.Save(8*vg.Inch, 5*vg.Inch, tmp.Name()); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
