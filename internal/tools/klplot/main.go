// Command klplot draws KL against bits per weight from a CSV of measured
// points into a PNG (docs/quality.md's size-quality figure).
//
// The CSV has a header and the columns series,label,bits_per_weight,kl: one
// line per measured file; points of a series are joined in order of bits.
//
//	go run ./internal/tools/klplot -in docs/kl-bits.csv -out docs/kl-bits.png
package main

import (
	"cmp"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// point is one measured file.
type point struct {
	series, label string
	bits, kl      float64
}

// readPoints parses the CSV.
func readPoints(r io.Reader) ([]point, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, errors.New("no points")
	}
	var pts []point
	for i, row := range rows[1:] {
		if len(row) != 4 {
			return nil, fmt.Errorf("line %d: %d fields, want 4", i+2, len(row))
		}
		bits, err1 := strconv.ParseFloat(row[2], 64)
		kl, err2 := strconv.ParseFloat(row[3], 64)
		if err := errors.Join(err1, err2); err != nil || kl <= 0 || bits <= 0 {
			return nil, fmt.Errorf("line %d: bits %q and KL %q must be positive numbers", i+2, row[2], row[3])
		}
		pts = append(pts, point{row[0], row[1], bits, kl})
	}
	return pts, nil
}

// draw plots each series (log-scale KL) and saves the PNG.
func draw(pts []point, out string) error {
	p := plot.New()
	p.Title.Text = "bytellama: KL to the original against size"
	p.X.Label.Text = "bits per original weight (whole file)"
	p.Y.Label.Text = "mean KL (first 64 eval sequences)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	pts = slices.Clone(pts)
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.bits, b.bits) })
	var series []string
	for _, pt := range pts {
		if !slices.Contains(series, pt.series) {
			series = append(series, pt.series)
		}
	}
	for i, s := range series {
		var sorted plotter.XYs
		var sortedLabels []string
		for _, pt := range pts {
			if pt.series == s {
				sorted = append(sorted, plotter.XY{X: pt.bits, Y: pt.kl})
				sortedLabels = append(sortedLabels, pt.label)
			}
		}
		line, points, err := plotter.NewLinePoints(sorted)
		if err != nil {
			return err
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: sorted, Labels: sortedLabels})
		if err != nil {
			return err
		}
		p.Add(line, points, lbl)
		p.Legend.Add(s, line, points)
	}
	return p.Save(9*vg.Inch, 6*vg.Inch, out)
}

func main() {
	in := flag.String("in", "", "CSV of points (series,label,bits_per_weight,kl)")
	out := flag.String("out", "", "PNG to write")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	pts, err := readPoints(f)
	if err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	if err := draw(pts, *out); err != nil {
		log.Fatal(err)
	}
}
