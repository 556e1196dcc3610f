package model

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/formats"
)

func TestGenerationEOS(t *testing.T) {
	for _, tc := range []struct {
		name, file string // file "" leaves generation_config.json out
		want       []int
		err        string
	}{
		{"absent", "", nil, ""},
		{"one id", `{"eos_token_id": 2}`, []int{2}, ""},
		{"a list", `{"eos_token_id": [2, 7]}`, []int{2, 7}, ""},
		{"null", `{"eos_token_id": null}`, nil, ""},
		{"no eos", `{"bos_token_id": 1}`, nil, ""},
		{"truncated", `{"eos_token_id": 2`, nil, "not a JSON object"},
		{"an array", `[1, 2]`, nil, "not a JSON object"},
		{"a string id", `{"eos_token_id": "2"}`, nil, "eos_token_id"},
		{"a negative id", `{"eos_token_id": [-1]}`, nil, "eos_token_id"},
		{"a fractional id", `{"eos_token_id": 2.5}`, nil, "eos_token_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				os.WriteFile(filepath.Join(dir, GenerationConfigFile), []byte(tc.file), 0o644)
			}
			got, err := GenerationEOS(dir)
			if tc.err != "" {
				if !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), GenerationConfigFile) {
					t.Fatalf("error %v, want formats.ErrInvalid naming the file and %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("GenerationEOS = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
