// Package kernels provides the dense float32 numeric kernels used by the
// transformer forward and backward passes: a packed, cache-blocked,
// multi-threaded general matrix multiply (Sgemm) and a few vector helpers
// (Dot, Axpy, Scale, Softmax).
//
// All matrices are row-major with an explicit row stride (leading
// dimension), following BLAS conventions for the meaning of the transpose
// flags, alpha and beta.
//
// On amd64 the GEMM micro-kernel is written in assembly and selected at
// program start from the CPU features: an AVX-512 kernel when AVX512F is
// available, an AVX2+FMA kernel otherwise; the vector helpers use AVX2 when
// available. Other architectures, and builds with the purego tag, use
// portable Go. Every path computes the same result up to float32 rounding.
//
// Sgemm reads A in place through its strides and packs B into contiguous
// panels (Goto/BLIS blocking), splits C across goroutines in bands of whole
// register tiles, and computes products with a single row or column of C as
// dot products or axpys.
//
// Invalid dimensions, strides or slice lengths are programming errors and
// cause a panic, as in gonum's BLAS implementation.
package kernels
