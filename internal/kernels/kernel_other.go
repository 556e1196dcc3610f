//go:build !amd64 || purego

package kernels

// bestKernel is the micro-kernel Sgemm uses when Options does not force one.
var bestKernel = genericKernel

// supportedKernels lists every micro-kernel this build can run on this CPU.
func supportedKernels() []*microKernel { return []*microKernel{genericKernel} }
