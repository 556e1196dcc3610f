// Package verify compares a compressed model with its original and
// reports how far apart they are.
//
// Run (or RunPaths, from paths) first checks the integrity of a VLoRA file
// against the original's files (Integrity: every original tensor
// represented with its shape and dtype, the manifest consistent with the
// stored tensors, the recorded source SHA-256), then runs both models on
// the same data — a data file, or inputs sampled from the original — and
// measures KL(original‖compressed) per position (mean, p95, p99, maximum,
// see KL), top-1 agreement, the negative log-likelihood and perplexity of
// both, classifier accuracy, and the relative error of every hidden state.
// Beside the file it measures a same-size baseline, the original with every
// 2-D tensor rounded to nearest (RoundToNearest), and records whether the
// file wins against it. Compare is the measurement alone, for callers
// (distillation) that hold both models in memory.
//
// Options.MaxKL, Options.MinAgreement and Options.FailIfWorse are
// thresholds: a missed one is returned wrapping ErrThreshold, together with
// the report. Bad input wraps formats.ErrInvalid.
package verify
