//go:build unix

package tokenizer

import (
	"syscall"
	"time"
)

// processCPUTime returns the user and system CPU time of the process, or
// 0 when it cannot be read.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
