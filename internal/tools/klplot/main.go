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
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	vgdraw "gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
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
		if err := errors.Join(err1, err2); err != nil || !(kl > 0 && bits > 0) || math.IsInf(kl, 0) || math.IsInf(bits, 0) {
			return nil, fmt.Errorf("line %d: bits %q and KL %q must be finite positive numbers", i+2, row[2], row[3])
		}
		pts = append(pts, point{row[0], row[1], bits, kl})
	}
	return pts, nil
}

// Figure size.
const (
	figWidth  = 9 * vg.Inch
	figHeight = 6 * vg.Inch
)

// draw plots each series (log-scale KL) and saves the PNG. Each point's
// label is placed where it overlaps no other label, marker or the legend
// (see placeLabels).
func draw(pts []point, out string) error {
	p, series := newPlot(pts)
	pts = sortedByBits(pts)
	labels, leaders, err := placeLabels(p, pts, series)
	if err != nil {
		return err
	}
	for i, l := range labels {
		col := plotutil.Color(slices.Index(series, pts[i].series))
		l.TextStyle[0].Color = col
		p.Add(l)
		if leaders[i] != nil {
			leaders[i].LineStyle.Color = col
			p.Add(leaders[i])
		}
	}
	return p.Save(figWidth, figHeight, out)
}

// sortedByBits returns the points in order of bits per weight.
func sortedByBits(pts []point) []point {
	pts = slices.Clone(pts)
	slices.SortStableFunc(pts, func(a, b point) int { return cmp.Compare(a.bits, b.bits) })
	return pts
}

// newPlot returns the plot of the series' lines and markers, with the axes'
// ranges fixed (room for labels on the right, for the legend at the top),
// and the names of the series in order of first appearance.
func newPlot(pts []point) (*plot.Plot, []string) {
	p := plot.New()
	p.Title.Text = "bytellama: KL to the original against size"
	p.X.Label.Text = "bits per original weight (whole file)"
	p.Y.Label.Text = "mean KL (first 64 eval sequences)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	pts = sortedByBits(pts)
	var series []string
	for _, pt := range pts {
		if !slices.Contains(series, pt.series) {
			series = append(series, pt.series)
		}
	}
	for i, s := range series {
		var sorted plotter.XYs
		for _, pt := range pts {
			if pt.series == s {
				sorted = append(sorted, plotter.XY{X: pt.bits, Y: pt.kl})
			}
		}
		line, points, err := plotter.NewLinePoints(sorted)
		if err != nil {
			panic(err) // readPoints admits finite positive values only
		}
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(s, line, points)
	}
	// Room for the labels right of the last point and for the legend
	// above the highest one.
	xmin, xmax, ymin, ymax := pts[0].bits, pts[0].bits, pts[0].kl, pts[0].kl
	for _, pt := range pts {
		xmin, xmax = min(xmin, pt.bits), max(xmax, pt.bits)
		ymin, ymax = min(ymin, pt.kl), max(ymax, pt.kl)
	}
	p.X.Min, p.X.Max = math.Max(0, xmin-0.12*(xmax-xmin)), xmax+0.2*(xmax-xmin)
	p.Y.Min, p.Y.Max = ymin/2, ymax*30
	return p, series
}

// placeLabels returns one Labels plotter per point, offset so that the
// label overlaps as little as possible (nothing, where there is room) of
// the labels placed before it, the markers and the legend, and stays
// inside the data area. Candidates are tried right of the point, left of
// it, above and below, at growing distances; the first with the least
// overlap wins. A label set away from its point gets a leader line to it
// (nil otherwise).
func placeLabels(p *plot.Plot, pts []point, series []string) ([]*plotter.Labels, []*leader, error) {
	c := vgdraw.New(vgimg.New(figWidth, figHeight))
	da := p.DataCanvas(c)
	trX, trY := p.Transforms(&da)
	const marker, gap = vg.Length(4), vg.Length(3)
	var taken []vg.Rectangle
	for _, pt := range pts {
		at := vg.Point{X: trX(pt.bits), Y: trY(pt.kl)}
		taken = append(taken, vg.Rectangle{Min: at.Sub(vg.Point{X: marker, Y: marker}), Max: at.Add(vg.Point{X: marker, Y: marker})})
	}
	taken = append(taken, legendBox(p, da, series))
	// The lines between a series' points, as small boxes every few
	// points of length, which labels avoid less strongly.
	var lines []vg.Rectangle
	for _, s := range series {
		var prev *vg.Point
		for _, pt := range pts {
			if pt.series != s {
				continue
			}
			at := vg.Point{X: trX(pt.bits), Y: trY(pt.kl)}
			if prev != nil {
				d := at.Sub(*prev)
				n := int(math.Hypot(float64(d.X), float64(d.Y))/3) + 1
				for k := 0; k <= n; k++ {
					q := prev.Add(d.Scale(vg.Length(float64(k) / float64(n))))
					lines = append(lines, vg.Rectangle{Min: q.Sub(vg.Point{X: 1.5, Y: 1.5}), Max: q.Add(vg.Point{X: 1.5, Y: 1.5})})
				}
			}
			prev = &at
		}
	}
	// Labels of crowded points first, so that they get the near places.
	order := make([]int, len(pts))
	for i := range order {
		order[i] = i
	}
	crowd := func(i int) int {
		n := 0
		for _, q := range pts {
			if math.Abs(float64(trX(q.bits)-trX(pts[i].bits))) < 40 && math.Abs(float64(trY(q.kl)-trY(pts[i].kl))) < 20 {
				n++
			}
		}
		return n
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(crowd(b), crowd(a)) })
	out := make([]*plotter.Labels, len(pts))
	leaders := make([]*leader, len(pts))
	for _, i := range order {
		pt := pts[i]
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: pt.bits, Y: pt.kl}}, Labels: []string{pt.label}})
		if err != nil {
			return nil, nil, err
		}
		rect := l.TextStyle[0].Rectangle(pt.label)
		w, h := rect.Size().X, rect.Size().Y
		at := vg.Point{X: trX(pt.bits), Y: trY(pt.kl)}
		var best vg.Point
		bestCost, bestStep := math.Inf(1), vg.Length(0)
		for step := vg.Length(0); step < 5 && bestCost > 0; step++ {
			d := step * (h + 1)
			for _, off := range []vg.Point{
				{X: marker + gap, Y: -h/2 - rect.Min.Y},
				{X: marker + gap, Y: marker + d},
				{X: marker + gap, Y: -h - marker - d},
				{X: -w - marker - gap, Y: -h/2 - rect.Min.Y},
				{X: -w - marker - gap, Y: marker + d},
				{X: -w - marker - gap, Y: -h - marker - d},
				{X: -w / 2, Y: marker + gap + d},
				{X: -w / 2, Y: -h - marker - gap - d},
			} {
				box := rect.Add(at.Add(off))
				cost := 0.0
				for _, t := range taken {
					cost += overlap(box, t)
				}
				for _, t := range lines {
					cost += 0.2 * overlap(box, t)
				}
				if out := float64(w*h) - overlap(box, da.Rectangle); out > 0 {
					cost += 10 * out
				}
				if cost < bestCost {
					best, bestCost, bestStep = off, cost, step
				}
			}
		}
		l.Offset = best
		box := rect.Add(at.Add(best))
		taken = append(taken, box)
		out[i] = l
		if bestStep > 0 {
			near := vg.Point{X: min(max(at.X, box.Min.X), box.Max.X), Y: min(max(at.Y, box.Min.Y), box.Max.Y)}
			leaders[i] = &leader{x: pt.bits, y: pt.kl, to: near.Sub(at), LineStyle: vgdraw.LineStyle{Width: vg.Points(0.5)}}
		}
	}
	return out, leaders, nil
}

// leader is a line from the point (x, y) to the offset to (in canvas
// units) where its label sits.
type leader struct {
	x, y float64
	to   vg.Point
	vgdraw.LineStyle
}

// Plot draws the line, leaving the marker itself clear.
func (l *leader) Plot(c vgdraw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	at := vg.Point{X: trX(l.x), Y: trY(l.y)}
	n := vg.Length(math.Hypot(float64(l.to.X), float64(l.to.Y)))
	if n <= 5 {
		return
	}
	from := at.Add(l.to.Scale(5 / n))
	c.StrokeLine2(l.LineStyle, from.X, from.Y, at.X+l.to.X, at.Y+l.to.Y)
}

// legendBox is the rectangle the legend of the series names takes in the
// data area da: at its top right, as p.Legend.Top and the default
// alignment put it.
func legendBox(p *plot.Plot, da vgdraw.Canvas, names []string) vg.Rectangle {
	var w, h vg.Length
	for _, e := range names {
		w = max(w, p.Legend.TextStyle.Width(e))
		h += p.Legend.TextStyle.Height(e) + p.Legend.Padding
	}
	w += p.Legend.ThumbnailWidth + 2*p.Legend.Padding
	return vg.Rectangle{Min: vg.Point{X: da.Max.X - w, Y: da.Max.Y - h}, Max: da.Max}
}

// overlap is the area two rectangles share.
func overlap(a, b vg.Rectangle) float64 {
	w := min(a.Max.X, b.Max.X) - max(a.Min.X, b.Min.X)
	h := min(a.Max.Y, b.Max.Y) - max(a.Min.Y, b.Min.Y)
	if w <= 0 || h <= 0 {
		return 0
	}
	return float64(w * h)
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
