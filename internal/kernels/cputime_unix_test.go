//go:build unix

package kernels

import (
	"syscall"
	"time"
)

// processCPUTime returns the user plus system CPU time consumed so far by all
// threads of the process.
func processCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
