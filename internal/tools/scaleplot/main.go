// Command scaleplot draws the scaling benchmark of scripts/bench-scaling.sh:
// wall time, CPU time and peak RSS of each stage against the parameter
// count, on log-log axes, side by side in one PNG. CPU time is the steadier
// measure on a shared machine.
//
//	go run ./internal/tools/scaleplot -in scaling.csv -out docs/scaling.png
//
// The input is CSV with the header model,params,stage,wall_s,peak_rss_mib,
// cpu_s (further columns are ignored).
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// row is one measurement.
type row struct {
	stage               string
	params              float64
	wallS, rssMiB, cpuS float64
}

func main() {
	in := flag.String("in", "", "CSV written by scripts/bench-scaling.sh")
	out := flag.String("out", "", "PNG to write")
	flag.Parse()
	if *in == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "scaleplot: -in and -out are required")
		os.Exit(2)
	}
	rows, err := read(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleplot:", err)
		os.Exit(2)
	}
	if err := draw3(rows, *out); err != nil {
		fmt.Fprintln(os.Stderr, "scaleplot:", err)
		os.Exit(1)
	}
}

// read parses the CSV file at path.
func read(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s: no measurements", path)
	}
	var rows []row
	for i, r := range recs[1:] {
		if len(r) < 6 {
			return nil, fmt.Errorf("%s: line %d: %d fields, want 6", path, i+2, len(r))
		}
		x := row{stage: r[2]}
		for j, dst := range []*float64{&x.params, &x.wallS, &x.rssMiB, &x.cpuS} {
			f := r[[]int{1, 3, 4, 5}[j]]
			v, err := strconv.ParseFloat(f, 64)
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("%s: line %d: bad number %q", path, i+2, f)
			}
			*dst = v
		}
		rows = append(rows, x)
	}
	return rows, nil
}

// draw3 writes the wall-time, CPU-time and peak-RSS panels into a PNG at
// out, through a temporary file renamed into place.
func draw3(rows []row, out string) error {
	var stages []string
	for _, r := range rows {
		if !slices.Contains(stages, r.stage) {
			stages = append(stages, r.stage)
		}
	}
	wall, err := panel(rows, stages, "wall time (s)", func(r row) float64 { return r.wallS })
	if err != nil {
		return err
	}
	cpu, err := panel(rows, stages, "CPU time (s)", func(r row) float64 { return r.cpuS })
	if err != nil {
		return err
	}
	rss, err := panel(rows, stages, "peak RSS (MiB)", func(r row) float64 { return r.rssMiB })
	if err != nil {
		return err
	}
	const w, h = 15 * vg.Inch, 5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 3, PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2}
	panels := []*plot.Plot{wall, cpu, rss}
	canvases := plot.Align([][]*plot.Plot{panels}, tiles, dc)
	for i, p := range panels {
		p.Draw(canvases[0][i])
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".scaleplot-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// panel plots value against parameters, one line per stage, on log axes.
func panel(rows []row, stages []string, ylabel string, value func(row) float64) (*plot.Plot, error) {
	p := plot.New()
	p.X.Label.Text = "parameters"
	p.Y.Label.Text = ylabel
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top, p.Legend.Left = true, true
	p.Add(plotter.NewGrid())
	for i, s := range stages {
		var xy plotter.XYs
		for _, r := range rows {
			if r.stage == s {
				xy = append(xy, plotter.XY{X: r.params, Y: value(r)})
			}
		}
		slices.SortFunc(xy, func(a, b plotter.XY) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		})
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(i)
		l.Color, pts.Color = c, c
		pts.Shape = plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(s, l, pts)
	}
	p.Legend.TextStyle.Color = color.Black
	return p, nil
}
