//go:build !unix

package kernels

import "time"

// processCPUTime is unavailable on this platform.
func processCPUTime() (time.Duration, bool) { return 0, false }
