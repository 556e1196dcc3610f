package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadAndDraw checks that a well-formed CSV is read and drawn into a
// PNG, and that malformed ones are refused with the line named.
func TestReadAndDraw(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, csv, err string
	}{
		{name: "good", csv: "model,params,stage,wall_s,peak_rss_mib,cpu_s\na,1e6,compress,1,100,0.5\nb,1e8,compress,10,200,5\na,1e6,verify,2,50,1\n"},
		{name: "short line", csv: "model,params,stage,wall_s,peak_rss_mib,cpu_s\na,1e6,compress,1,100\n", err: "line 2"},
		{name: "bad number", csv: "model,params,stage,wall_s,peak_rss_mib,cpu_s\na,1e6,compress,x,100,1\n", err: `bad number "x"`},
		{name: "not positive", csv: "model,params,stage,wall_s,peak_rss_mib,cpu_s\na,0,compress,1,100,1\n", err: "line 2"},
		{name: "empty", csv: "model,params,stage,wall_s,peak_rss_mib,cpu_s\n", err: "no measurements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(dir, tc.name+".csv")
			if err := os.WriteFile(in, []byte(tc.csv), 0o644); err != nil {
				t.Fatal(err)
			}
			rows, err := read(in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 3 || rows[1].params != 1e8 || rows[1].cpuS != 5 {
				t.Fatalf("rows %+v", rows)
			}
			out := filepath.Join(dir, "plot.png")
			if err := draw3(rows, out); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(out)
			if err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
				t.Fatalf("output is not a PNG (%d bytes, %v)", len(b), err)
			}
		})
	}
}
