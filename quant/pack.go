package quant

// bitWriter appends codes of a fixed width to a little-endian bit stream.
type bitWriter struct {
	buf  []byte
	bits int
	acc  uint64
	n    int // bits held in acc
	pos  int
}

func newBitWriter(buf []byte, bits int) *bitWriter { return &bitWriter{buf: buf, bits: bits} }

// put appends the low bits of u.
func (w *bitWriter) put(u uint32) {
	w.acc |= uint64(u) << w.n
	w.n += w.bits
	for w.n >= 8 {
		w.buf[w.pos] = byte(w.acc)
		w.pos++
		w.acc >>= 8
		w.n -= 8
	}
}

// flush writes a final partial byte, zero-padded.
func (w *bitWriter) flush() {
	if w.n > 0 {
		w.buf[w.pos] = byte(w.acc)
		w.pos++
		w.acc, w.n = 0, 0
	}
}

// decodeRun writes lut[code]·scale for the len(dst) codes of width bits
// starting at element index first of the stream codes.
func decodeRun(dst []float32, codes []byte, first, bits int, scale float32, lut *[256]float32) {
	switch bits {
	case 8:
		src := codes[first : first+len(dst)]
		for j, b := range src {
			dst[j] = lut[b] * scale
		}
	case 4:
		i := first
		j := 0
		if i&1 == 1 && j < len(dst) {
			dst[0] = lut[codes[i>>1]>>4] * scale
			i++
			j++
		}
		for ; j+1 < len(dst); j += 2 {
			b := codes[i>>1]
			dst[j] = lut[b&15] * scale
			dst[j+1] = lut[b>>4] * scale
			i += 2
		}
		if j < len(dst) {
			dst[j] = lut[codes[i>>1]&15] * scale
		}
	case 2:
		for j := range dst {
			i := first + j
			dst[j] = lut[(codes[i>>2]>>(2*(i&3)))&3] * scale
		}
	default:
		mask := uint32(1)<<bits - 1
		bit := first * bits
		for j := range dst {
			// A code of at most 7 bits spans at most two bytes.
			p := bit >> 3
			v := uint32(codes[p])
			if p+1 < len(codes) {
				v |= uint32(codes[p+1]) << 8
			}
			dst[j] = lut[(v>>(bit&7))&mask] * scale
			bit += bits
		}
	}
}
