package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg"
	vgdraw "gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

func TestReadAndDraw(t *testing.T) {
	csv := "series,label,bits_per_weight,kl\nRTN,int4,4.54,0.0358\nRTN,int8,8.14,0.0002\nQAT,int4,4.54,0.0268\n"
	pts, err := readPoints(strings.NewReader(csv))
	if err != nil || len(pts) != 3 || pts[1].bits != 8.14 || pts[2].series != "QAT" {
		t.Fatalf("points %+v, %v", pts, err)
	}
	out := filepath.Join(t.TempDir(), "kl.png")
	if err := draw(pts, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("not a PNG (%v)", err)
	}
	for _, bad := range []string{"series,label,bits_per_weight,kl\n", "h\nRTN,int4,x,0.1\n", "h\nRTN,int4,4,0\n", "h\nRTN,4,0.1\n", "h\nRTN,int4,NaN,0.1\n", "h\nRTN,int4,4,+Inf\n"} {
		if _, err := readPoints(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestLabelsDoNotOverlap places the labels of docs/kl-bits.csv and checks
// that no two of them share any area and that each stays in the data
// area.
func TestLabelsDoNotOverlap(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "..", "docs", "kl-bits.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pts, err := readPoints(f)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "kl.png")
	if err := draw(pts, out); err != nil {
		t.Fatal(err)
	}
	p, series := newPlot(pts)
	pts = sortedByBits(pts)
	labels, _, err := placeLabels(p, pts, series)
	if err != nil {
		t.Fatal(err)
	}
	da := p.DataCanvas(vgdraw.New(vgimg.New(figWidth, figHeight)))
	trX, trY := p.Transforms(&da)
	var boxes []vg.Rectangle
	for i, l := range labels {
		at := vg.Point{X: trX(pts[i].bits), Y: trY(pts[i].kl)}
		b := l.TextStyle[0].Rectangle(pts[i].label).Add(at.Add(l.Offset))
		if overlap(b, da.Rectangle) < float64(b.Size().X*b.Size().Y)-1e-6 {
			t.Errorf("label %q leaves the data area", pts[i].label)
		}
		for j, c := range boxes {
			if overlap(b, c) > 0 {
				t.Errorf("labels %q and %q overlap", pts[i].label, pts[j].label)
			}
		}
		boxes = append(boxes, b)
	}
}
