// Command qualityplot draws the quality table of docs/quality.md: KL and
// NLL against the stored fraction of the original's parameters, one marker
// per measured recipe.
//
//	go run ./internal/tools/qualityplot -in docs/quality-points.csv -out docs/quality-points.png
//
// The CSV has a header and the columns recipe, stored_fraction, kl, nll;
// the points of one recipe are joined by a line.
//
// With -pareto it draws the bits figure instead: the CSV has the columns
// model, method, bits, kl, and each model gets a panel of KL (log scale)
// against bits per original weight, a line per method.
//
//	go run ./internal/tools/qualityplot -pareto -in docs/quality-bits.csv -out docs/quality-bits.png
package main

import (
	"bytes"
	"encoding/csv"
	"flag"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/vlora-convert/vlora-convert/formats"
)

// point is one measured run.
type point struct {
	recipe       string
	frac, kl, nl float64
}

func main() {
	in := flag.String("in", "docs/quality-points.csv", "CSV of measured points")
	out := flag.String("out", "docs/quality-points.png", "PNG to write")
	pareto := flag.Bool("pareto", false, "draw KL against bits per weight, a panel per model (CSV: model, method, bits, kl)")
	flag.Parse()
	var err error
	if *pareto {
		var models []string
		var byModel map[string][]point
		if models, byModel, err = readPareto(*in); err == nil {
			err = drawPareto(models, byModel, *out)
		}
	} else {
		var pts []point
		if pts, err = read(*in); err == nil {
			err = drawPanels(pts, *out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "qualityplot:", err)
		os.Exit(1)
	}
}

// read parses the CSV.
func read(path string) ([]point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, err
	}
	var pts []point
	for i, r := range rows {
		if i == 0 {
			continue
		}
		if len(r) != 4 {
			return nil, fmt.Errorf("%s:%d: %d columns, want 4", path, i+1, len(r))
		}
		p := point{recipe: r[0]}
		for j, dst := range []*float64{&p.frac, &p.kl, &p.nl} {
			if *dst, err = strconv.ParseFloat(r[j+1], 64); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
		}
		pts = append(pts, p)
	}
	return pts, nil
}

// panel draws one metric against the stored fraction, a line per recipe.
func panel(pts []point, ylabel string, y func(point) float64) (*plot.Plot, error) {
	return panelX(pts, "stored parameters / original", ylabel, y)
}

// panelX draws y against point.frac, labelled xlabel, a line per recipe.
func panelX(pts []point, xlabel, ylabel string, y func(point) float64) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	var recipes []string
	for _, q := range pts {
		if !slices.Contains(recipes, q.recipe) {
			recipes = append(recipes, q.recipe)
		}
	}
	for i, r := range recipes {
		var xy plotter.XYs
		for _, q := range pts {
			if q.recipe == r {
				xy = append(xy, plotter.XY{X: q.frac, Y: y(q)})
			}
		}
		slices.SortFunc(xy, func(a, b plotter.XY) int { return int(a.X*1e6 - b.X*1e6) })
		line, scatter, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		c := seriesColor(i)
		line.Color, scatter.Color = c, c
		scatter.Shape = draw.CircleGlyph{}
		p.Add(line, scatter)
		p.Legend.Add(r, line, scatter)
	}
	p.Legend.Left = true
	p.Legend.Top = true
	// Pad the ranges so that points are not drawn on the axes, and leave
	// room above the data for the legend (a line per recipe).
	p.X.Min, p.X.Max = p.X.Min-0.01, p.X.Max+0.01
	span := p.Y.Max - p.Y.Min
	p.Y.Min, p.Y.Max = p.Y.Min-0.05*span, p.Y.Max+(0.05+0.09*float64(len(recipes)))*span
	p.Y.Tick.Marker = threeDigits{}
	return p, nil
}

// threeDigits labels the default ticks with three significant digits.
type threeDigits struct{}

// Ticks implements plot.Ticker.
func (threeDigits) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 3, 64)
		}
	}
	return ts
}

// seriesColor returns a distinct color for series i.
func seriesColor(i int) color.Color {
	palette := []color.RGBA{{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
		{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
		{188, 189, 34, 255}, {23, 190, 207, 255}}
	return palette[i%len(palette)]
}

// drawPanels writes the KL and NLL panels side by side into out, atomically.
func drawPanels(pts []point, out string) error {
	kl, err := panel(pts, "KL(original ‖ compressed), nats/token", func(q point) float64 { return q.kl })
	if err != nil {
		return err
	}
	nll, err := panel(pts, "NLL, nats/token", func(q point) float64 { return q.nl })
	if err != nil {
		return err
	}
	img := vgimg.New(14*vg.Inch, 5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 4}
	kl.Draw(tiles.At(dc, 0, 0))
	nll.Draw(tiles.At(dc, 1, 0))
	return writePNG(img, out)
}

// readPareto parses the bits CSV (model, method, bits, kl) into points per
// model (recipe: the method, frac: the bits), models in first-seen order.
func readPareto(path string) ([]string, map[string][]point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	var models []string
	by := map[string][]point{}
	for i, r := range rows {
		if i == 0 {
			continue
		}
		if len(r) != 4 {
			return nil, nil, fmt.Errorf("%s:%d: %d columns, want 4", path, i+1, len(r))
		}
		p := point{recipe: r[1]}
		for j, dst := range []*float64{&p.frac, &p.kl} {
			if *dst, err = strconv.ParseFloat(r[j+2], 64); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
			}
		}
		if !(p.kl > 0) {
			return nil, nil, fmt.Errorf("%s:%d: KL %v must be positive (log scale)", path, i+1, p.kl)
		}
		if _, ok := by[r[0]]; !ok {
			models = append(models, r[0])
		}
		by[r[0]] = append(by[r[0]], p)
	}
	return models, by, nil
}

// drawPareto writes one panel per model, KL on a log scale against bits per
// original weight, side by side into out, atomically.
func drawPareto(models []string, by map[string][]point, out string) error {
	if len(models) == 0 {
		return fmt.Errorf("no points")
	}
	img := vgimg.New(vg.Length(7*len(models))*vg.Inch, 5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(models), PadX: vg.Inch / 4}
	for i, m := range models {
		p, err := panelX(by[m], "bits per original weight (whole file)", "KL(original ‖ compressed), nats/token", func(q point) float64 { return q.kl })
		if err != nil {
			return err
		}
		p.Title.Text = m
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, q := range by[m] {
			lo, hi = math.Min(lo, q.kl), math.Max(hi, q.kl)
		}
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: 2}
		p.Y.Min, p.Y.Max = lo/2, hi*1e3
		p.X.Min, p.X.Max = p.X.Min-0.1, p.X.Max+0.1
		p.Legend.Left, p.Legend.Top = false, true
		p.Draw(tiles.At(dc, i, 0))
	}
	return writePNG(img, out)
}

// writePNG encodes img as a PNG and writes it to out atomically.
func writePNG(img *vgimg.Canvas, out string) error {
	var b bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&b); err != nil {
		return err
	}
	return formats.WriteFileAtomic(out, b.Bytes())
}
