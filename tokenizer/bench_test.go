package tokenizer

import (
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// benchTexts returns the texts encoded by the benchmarks: Go/Python source
// (the evaluation text of ../shared) and English prose (a Markdown
// document of the Go distribution).
func benchTexts(b *testing.B) map[string]string {
	texts := map[string]string{}
	data, err := os.ReadFile(testenv.Shared(b, "data/stdlib-text/eval.txt"))
	if err != nil {
		b.Fatal(err)
	}
	texts["source"] = string(data)
	if data, err := os.ReadFile(filepath.Join(runtime.GOROOT(), "doc", "godebug.md")); err == nil {
		texts["english"] = string(data)
	}
	return texts
}

// BenchmarkEncode measures encoding throughput (MB/s of input text) on one
// goroutine. "warm" keeps the BPE word cache across iterations, as a
// long-running encoder does; "cold" empties it before each iteration.
// Besides the wall-clock MB/s it reports cpu-MB/s, the throughput per
// second of process CPU time, which a machine shared with other work
// disturbs less.
//
// It runs on the tokenizers of TestGolden (see goldenDirs).
func BenchmarkEncode(b *testing.B) {
	texts := benchTexts(b)
	dirs := goldenDirs()
	names := slices.Sorted(maps.Keys(dirs))
	for _, name := range names {
		tok, err := Load(dirs[name](b))
		if err != nil {
			b.Fatal(err)
		}
		for _, textName := range []string{"english", "source"} {
			text, ok := texts[textName]
			if !ok {
				continue
			}
			for _, mode := range []string{"warm", "cold"} {
				b.Run(name+"/"+textName+"/"+mode, func(b *testing.B) {
					m, _ := tok.model.(*bpe)
					b.SetBytes(int64(len(text)))
					cpu0 := processCPUTime()
					for b.Loop() {
						if mode == "cold" && m != nil {
							clear(m.cache)
							m.arena = m.arena[:0]
						}
						tok.Encode(text, false)
					}
					if cpu := processCPUTime() - cpu0; cpu > 0 {
						b.ReportMetric(float64(len(text))*float64(b.N)/cpu.Seconds()/1e6, "cpu-MB/s")
					}
				})
			}
		}
	}
}
