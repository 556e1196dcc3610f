package convert

import (
	"slices"
	"testing"
)

// TestPermuteRope checks the row order against llama.cpp's
// LlamaModel.permute (reshape(heads, 2, hd/2, cols).swapaxes(1, 2)): in
// each head, rows (i, i+hd/2) become rows (2i, 2i+1).
func TestPermuteRope(t *testing.T) {
	tests := []struct {
		heads, hd, cols int
		want            []int // source row of each output row
	}{
		{1, 2, 1, []int{0, 1}},
		{1, 4, 3, []int{0, 2, 1, 3}},
		{2, 6, 2, []int{0, 3, 1, 4, 2, 5, 6, 9, 7, 10, 8, 11}},
	}
	for _, tc := range tests {
		rows := tc.heads * tc.hd
		x := make([]float32, rows*tc.cols)
		for r := range rows {
			for c := range tc.cols {
				x[r*tc.cols+c] = float32(r*100 + c)
			}
		}
		got := permuteRope(x, tc.heads, tc.hd)
		want := make([]float32, len(x))
		for r, src := range tc.want {
			copy(want[r*tc.cols:(r+1)*tc.cols], x[src*tc.cols:(src+1)*tc.cols])
		}
		if !slices.Equal(got, want) {
			t.Errorf("heads %d hd %d: got %v, want %v", tc.heads, tc.hd, got, want)
		}
	}
}

// TestTranspose checks transpose on a non-square matrix.
func TestTranspose(t *testing.T) {
	got := transpose([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if want := []float32{1, 4, 2, 5, 3, 6}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
