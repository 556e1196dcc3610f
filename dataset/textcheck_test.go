package dataset

import (
	"errors"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

func TestCheckText(t *testing.T) {
	long := strings.Repeat("plain text, ", 100) // 1,200 bytes
	for _, tc := range []struct {
		name, text string
		want       string // "" when accepted
	}{
		{"ascii", "hello\nworld\n", ""},
		{"utf-8", "naïve café — 東京\n", ""},
		{"empty", "", ""},
		{"one stray byte in 1,200", long[:600] + "\xff" + long[600:], ""},
		{"NUL", "abc\x00def", "NUL byte at offset 3"},
		{"UTF-16", "\xff\xfeh\x00i\x00", "NUL byte"},
		{"random bytes", "\x89PNG\r\n\x1a\n\xde\xad\xbe\xef\xfa\xce", "not UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckText("calib.txt", []byte(tc.text))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "calib.txt") {
				t.Errorf("error %v, want formats.ErrInvalid naming calib.txt and %q", err, tc.want)
			}
		})
	}
}
