// Package stage holds the vocabulary shared by the pipeline stages
// (convert, distill, verify): their names and the progress report each of
// them gives while it works.
package stage

// Names of the pipeline stages, as Progress.Stage reports them.
const (
	Compress = "compress"
	Distill  = "distill"
	Verify   = "verify"
	// Read is the loading of a model's tensors into memory.
	Read = "read"
	// Sample is the drawing of sequences from a model.
	Sample = "sample"
)

// Progress reports how far a stage has advanced. Done counts finished units
// out of Total: tensors for Compress and Read, optimizer steps for Distill,
// evaluated items for Verify and token positions for Sample.
type Progress struct {
	Stage       string
	Done, Total int
	// Item names the unit just finished, when it has a name (a tensor).
	Item string
	// Loss is the training loss of the step just finished (Distill only).
	Loss float64
	// TokensPerSec is the training throughput so far (Distill only).
	TokensPerSec float64
}

// ProgressFunc receives progress reports. Stages call it from one goroutine
// at a time.
type ProgressFunc func(Progress)
