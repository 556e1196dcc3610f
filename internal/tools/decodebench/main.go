// Command decodebench measures decoding speed: it loads a dense model
// directory or a VLoRA file, feeds a prompt of -prompt seeded random token
// ids, then generates -tokens tokens greedily (no stop token) with the
// generate package, and prints one JSON line: the prompt and generation
// times, the generated tokens per second, the bytes of stored weights a
// decoding step reads, and the tokens per second those bytes allow at the
// memory bandwidth given by -bandwidth (GB/s, from -measure-bandwidth).
//
//	go run ./internal/tools/decodebench -model out/bench/vlora-bf16 -threads 2
//	go run ./internal/tools/decodebench -measure-bandwidth -threads 2
//	go run ./internal/tools/decodebench -measure-bandwidth -working-sets 2,16,64,256,2048
//
// -working-sets (MiB, the total of all threads) adds the read bandwidth of
// each working-set size, swept again and again: sizes that fit the
// last-level cache read from it, larger ones from memory. A decoding step
// whose weights are reused while still cached (a VLoRA compound's base,
// read by each of its layers) reads those bytes at the cache's rate.
//
// Peak memory is the process's: run it under /usr/bin/time -v.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vlora-convert/vlora-convert/generate"
	"github.com/vlora-convert/vlora-convert/internal/kernels"
	"github.com/vlora-convert/vlora-convert/model"
)

func main() {
	path := flag.String("model", "", "model directory or VLoRA file")
	residency := flag.String("residency", "stored", "stored, streamed or resident")
	promptLen := flag.Int("prompt", 32, "prompt tokens")
	tokens := flag.Int("tokens", 128, "generated tokens")
	threads := flag.Int("threads", 2, "threads (GOMAXPROCS)")
	seed := flag.Uint64("seed", 1, "seed of the prompt")
	bw := flag.Float64("bandwidth", 0, "measured memory bandwidth in GB/s, for the bound")
	measure := flag.Bool("measure-bandwidth", false, "measure the streaming-read bandwidth and exit")
	sets := flag.String("working-sets", "", "with -measure-bandwidth: comma-separated working-set sizes in MiB to measure too")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	kvF16 := flag.Bool("kv-f16", false, "keep the key/value cache in half precision")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "decodebench:", err)
			os.Exit(1)
		}
		defer f.Close()
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	runtime.GOMAXPROCS(*threads)
	if *measure {
		out := map[string]any{"threads": *threads, "read_gb_per_s": round2(bandwidth(*threads))}
		if *sets != "" {
			var by []map[string]any
			for _, f := range strings.Split(*sets, ",") {
				mib, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil || mib <= 0 {
					fmt.Fprintf(os.Stderr, "decodebench: -working-sets: %q is not a positive size in MiB\n", f)
					os.Exit(2)
				}
				by = append(by, map[string]any{"mib": mib, "read_gb_per_s": round2(workingSetBandwidth(*threads, int(mib*(1<<20))))})
			}
			out["by_working_set"] = by
		}
		enc, _ := json.Marshal(out)
		fmt.Println(string(enc))
		return
	}
	if err := run(*path, *residency, *promptLen, *tokens, *threads, *seed, *bw, *kvF16); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "decodebench:", err)
		os.Exit(1)
	}
}

func run(path, residency string, promptLen, tokens, threads int, seed uint64, bw float64, kvF16 bool) error {
	r := map[string]model.Residency{"stored": model.Stored, "streamed": model.Streamed, "resident": model.Resident}[residency]
	if r == model.Auto {
		return fmt.Errorf("-residency %q: want stored, streamed or resident", residency)
	}
	t0 := time.Now()
	m, err := model.LoadAs(path, r)
	if err != nil {
		return err
	}
	defer m.Close()
	m.Net.Threads = threads
	load := time.Since(t0)
	rng := rand.New(rand.NewPCG(seed, 1))
	prompt := make([]int, promptLen)
	for i := range prompt {
		prompt[i] = rng.IntN(m.Config.VocabSize)
	}
	var first time.Time
	start := time.Now()
	n := 0
	ids, err := generate.Run(context.Background(), m, prompt, generate.Options{MaxTokens: tokens + 1, F16Cache: kvF16}, func(int) error {
		if n == 0 {
			first = time.Now()
		}
		n++
		return nil
	})
	end := time.Now()
	if err != nil {
		return err
	}
	// The first token follows the prompt; the timed tokens are the
	// decoding steps after it, one per generated token.
	steps := len(ids) - 1
	gen := end.Sub(first).Seconds()
	out := map[string]any{
		"model": path, "residency": residency, "threads": threads,
		"load_s": load.Seconds(), "prompt_tokens": promptLen, "kv_f16": kvF16, "prompt_s": first.Sub(start).Seconds(),
		"generated_tokens": steps, "generate_s": gen, "tokens_per_s": float64(steps) / gen,
		"stored_bytes": m.StoredBytes,
	}
	if m.Net.Operators() {
		b := m.Net.StoredBytes()
		out["bytes_per_token"] = b
		if bw > 0 {
			out["bound_tokens_per_s"] = bw * 1e9 / float64(b)
			out["fraction_of_bound"] = float64(steps) / gen / (bw * 1e9 / float64(b))
		}
	}
	enc, _ := json.Marshal(out)
	fmt.Println(string(enc))
	return nil
}

// bandwidth returns the streaming-read bandwidth in GB/s of threads
// goroutines each summing its own 512 MiB (AVX2 dot products of a buffer
// with itself), best of five passes after a warm-up.
func bandwidth(threads int) float64 {
	const per = 1 << 27 // float32 values, 512 MiB
	bufs := make([][]float32, threads)
	for i := range bufs {
		bufs[i] = make([]float32, per)
		for j := range bufs[i] {
			bufs[i][j] = float32(j & 7)
		}
	}
	best := 0.0
	var sink float32
	for pass := range 6 {
		var wg sync.WaitGroup
		sums := make([]float32, threads)
		t := time.Now()
		for i := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := bufs[i]
				const chunk = 1 << 14
				var s float32
				for j := 0; j < len(b); j += chunk {
					c := b[j : j+chunk]
					s += kernels.Dot(c, c)
				}
				sums[i] = s
			}()
		}
		wg.Wait()
		secs := time.Since(t).Seconds()
		sink += sums[0]
		if pass > 0 {
			best = max(best, float64(threads)*per*4/secs/1e9)
		}
	}
	_ = sink
	return best
}

// round2 rounds to two decimals for printing.
func round2(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }

// workingSetBandwidth returns the read bandwidth in GB/s of threads
// goroutines each summing its own share of a working set of bytes bytes
// (AVX2 dot products of a buffer with itself) again and again: each pass
// reads at least 1 GiB in all, and the best of five passes after a warm-up
// is returned.
func workingSetBandwidth(threads, bytes int) float64 {
	per := max(1<<12, bytes/threads/4) // float32 values per thread
	bufs := make([][]float32, threads)
	for i := range bufs {
		bufs[i] = make([]float32, per)
		for j := range bufs[i] {
			bufs[i][j] = float32(j & 7)
		}
	}
	sweeps := max(1, (1<<30)/(threads*per*4))
	best := 0.0
	var sink float32
	for pass := range 6 {
		var wg sync.WaitGroup
		sums := make([]float32, threads)
		t := time.Now()
		for i := range threads {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b := bufs[i]
				const chunk = 1 << 12
				var s float32
				for range sweeps {
					for j := 0; j < len(b); j += chunk {
						c := b[j:min(j+chunk, len(b))]
						s += kernels.Dot(c, c)
					}
				}
				sums[i] = s
			}()
		}
		wg.Wait()
		secs := time.Since(t).Seconds()
		sink += sums[0]
		if pass > 0 {
			best = max(best, float64(threads*per*4*sweeps)/secs/1e9)
		}
	}
	_ = sink
	return best
}
