package main

import (
	"math"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// Documented ranges of the numeric flags. Values outside them are usage
// errors (exit code 2) naming the flag.
const (
	maxCompoundSize = 1 << 16
	maxRank         = 1 << 16
	maxOversample   = 1 << 12
	maxPowerIters   = 64
	maxWorkers      = 1 << 10
	maxSteps        = 1 << 24
	maxBatch        = 1 << 16
	maxSeqLen       = 1 << 16
	maxSamples      = 1 << 20
	maxTokens       = 1 << 40
)

// intRange checks that the integer flag name holds a value in [lo, hi].
func intRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return usagef("--%s %d outside its range [%d, %d]", name, v, lo, hi)
	}
	return nil
}

// int64Range checks that the 64-bit integer flag name holds a value in
// [lo, hi].
func int64Range(name string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return usagef("--%s %d outside its range [%d, %d]", name, v, lo, hi)
	}
	return nil
}

// floatRange checks that the float flag name holds a finite value in
// [lo, hi], or (lo, hi] when loOpen is set.
func floatRange(name string, v, lo, hi float64, loOpen bool) error {
	bad := math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi || (loOpen && v == lo)
	if !bad {
		return nil
	}
	if hi == math.MaxFloat64 {
		return usagef("--%s %v: want a finite number ≥ %g", name, v, lo)
	}
	open := "["
	if loOpen {
		open = "("
	}
	return usagef("--%s %v outside its range %s%g, %g]", name, v, open, lo, hi)
}

// firstError returns the first non-nil error.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// guardOutputs refuses outputs that would write into, or over, any input:
// an output file that is an input file or lies inside an input directory.
// outputs are the files a command writes, all named by the flag (or
// argument) flag. Paths are compared after resolving symbolic links, so a
// link cannot smuggle an input in. Empty inputs are ignored.
func guardOutputs(flag string, outputs []string, inputs ...string) error {
	for _, out := range outputs {
		o, err := canonical(out)
		if err != nil {
			return usagef("%s %s: %v", flag, out, err)
		}
		for _, in := range inputs {
			if in == "" {
				continue
			}
			i, err := canonical(in)
			if err != nil {
				continue // a missing input is reported by its reader
			}
			if o == i || within(o, i) {
				return usagef("%s would write %s, into or over the input %s; choose another path", flag, out, in)
			}
		}
	}
	return nil
}

// outputFiles lists the files named names inside dir.
func outputFiles(dir string, names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

// canonical returns the absolute path of p with the symbolic links of its
// longest existing prefix resolved.
func canonical(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		r, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		// Not there (or under a file): resolve the parent instead; the
		// writer reports what is wrong with the path itself.
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within reports whether path p lies strictly inside directory dir.
func within(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && rel != ".."
}

// inertRule names a flag and whether, in the combination given, it would
// do nothing, and what it needs to do something.
type inertRule struct {
	flag  string
	inert bool
	needs string
}

// refuseInert refuses the first flag given on the command line that a
// rule marks inert, so that no flag is silently ignored.
func refuseInert(cmd *cobra.Command, rules ...inertRule) error {
	for _, r := range rules {
		if r.inert && cmd.Flags().Changed(r.flag) {
			return usagef("--%s does nothing in this command line: it needs %s", r.flag, r.needs)
		}
	}
	return nil
}

// inertRules are the rules of the distillation flags.
func (d *distillFlags) inertRules() []inertRule {
	return []inertRule{
		{"local-lr", d.localSteps == 0, "a local stage (--local-steps)"},
		{"augment-prefix", d.augment == 0 || !d.active(), "continuations (--augment) in a distillation"},
	}
}
