//go:build !unix

package transformer

import "time"

// cpuTime is not measured on this platform; the benchmarks then report
// zero CPU seconds.
func cpuTime() time.Duration { return 0 }
