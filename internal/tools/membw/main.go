// Command membw measures the memory read bandwidth of this machine: T
// goroutines sum disjoint parts of a buffer much larger than the caches,
// and the best of several passes is printed in GB/s (10^9 bytes per
// second). It gives the bound of a decoder whose speed is the bytes of
// weights it reads per token: tokens/s ≤ bandwidth ÷ bytes per token.
//
//	go run ./internal/tools/membw -threads 2 -mib 1024
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

func main() {
	threads := flag.Int("threads", 2, "goroutines reading in parallel")
	mib := flag.Int("mib", 1024, "buffer size in MiB")
	passes := flag.Int("passes", 5, "passes over the buffer; the fastest counts")
	flag.Parse()
	if *threads < 1 || *mib < 64 || *passes < 1 {
		fmt.Fprintln(os.Stderr, "membw: -threads ≥ 1, -mib ≥ 64, -passes ≥ 1")
		os.Exit(2)
	}
	buf := make([]uint64, *mib<<20/8)
	for i := range buf {
		buf[i] = uint64(i)
	}
	best := 0.0
	var sink uint64
	for range *passes {
		var wg sync.WaitGroup
		sums := make([]uint64, *threads)
		chunk := len(buf) / *threads
		start := time.Now()
		for t := range *threads {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				part := buf[t*chunk : (t+1)*chunk]
				var s0, s1, s2, s3 uint64
				for i := 0; i+4 <= len(part); i += 4 {
					s0 += part[i]
					s1 += part[i+1]
					s2 += part[i+2]
					s3 += part[i+3]
				}
				sums[t] = s0 + s1 + s2 + s3
			}(t)
		}
		wg.Wait()
		secs := time.Since(start).Seconds()
		for _, s := range sums {
			sink += s
		}
		best = max(best, float64(chunk**threads*8)/secs/1e9)
	}
	fmt.Printf("%.2f\n", best)
	if sink == 1 {
		fmt.Fprintln(os.Stderr, sink)
	}
}
