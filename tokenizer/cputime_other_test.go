//go:build !unix

package tokenizer

import "time"

// processCPUTime is not available on this system.
func processCPUTime() time.Duration { return 0 }
