package tokenizer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vlora-convert/vlora-convert/formats"
)

// smallTokenizer is the JSON of a valid tokenizer: a BPE model over a, b
// and ab, with edit applied to its decoded form.
func smallTokenizer(t *testing.T, edit func(f map[string]any)) []byte {
	t.Helper()
	f := map[string]any{
		"added_tokens": []any{map[string]any{"id": 3, "content": "<s>", "special": true}},
		"model":        map[string]any{"type": "BPE", "vocab": map[string]any{"a": 0, "b": 1, "ab": 2}, "merges": []any{"a b"}},
	}
	if edit != nil {
		edit(f)
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func model(f map[string]any) map[string]any { return f["model"].(map[string]any) }

// nestedSequence returns a normalizer Sequence nested depth deep.
func nestedSequence(depth int) any {
	var c any = map[string]any{"type": "Lowercase"}
	for range depth {
		c = map[string]any{"type": "Sequence", "normalizers": []any{c}}
	}
	return c
}

// TestLoadHostile checks that malformed and out-of-bound tokenizer files
// are refused with an error wrapping formats.ErrInvalid that names the
// field, before anything sized by them is allocated.
func TestLoadHostile(t *testing.T) {
	manyMerges := make([]any, 5000)
	for i := range manyMerges {
		manyMerges[i] = "a b"
	}
	for _, tc := range []struct {
		name string
		edit func(f map[string]any)
		raw  string // used instead of edit when set
		want string
	}{
		{"vocab id near 2^63", func(f map[string]any) { model(f)["vocab"].(map[string]any)["ab"] = json.Number("9223372036854775807") }, "", "model.vocab"},
		{"vocab id beyond int64", func(f map[string]any) { model(f)["vocab"].(map[string]any)["ab"] = json.Number("92233720368547758070") }, "", "model.vocab"},
		{"vocab id in the billions", func(f map[string]any) { model(f)["vocab"].(map[string]any)["ab"] = 3e9 }, "", "model.vocab"},
		{"negative vocab id", func(f map[string]any) { model(f)["vocab"].(map[string]any)["ab"] = -1 }, "", "model.vocab"},
		{"fractional vocab id", func(f map[string]any) { model(f)["vocab"].(map[string]any)["ab"] = 1.5 }, "", "model.vocab"},
		{"vocab not an object", func(f map[string]any) { model(f)["vocab"] = []any{1} }, "", "model.vocab"},
		{"added id near 2^63", func(f map[string]any) {
			f["added_tokens"] = []any{map[string]any{"id": json.Number("9223372036854775806"), "content": "<s>"}}
		}, "", "added_tokens"},
		{"added id in the billions", func(f map[string]any) { f["added_tokens"] = []any{map[string]any{"id": 4e9, "content": "<s>"}} }, "", "added_tokens"},
		{"negative added id", func(f map[string]any) { f["added_tokens"] = []any{map[string]any{"id": -3, "content": "<s>"}} }, "", "added_tokens"},
		{"added tokens not a list", func(f map[string]any) { f["added_tokens"] = map[string]any{"id": 1} }, "", "added_tokens"},
		{"added token id a string", func(f map[string]any) { f["added_tokens"] = []any{map[string]any{"id": "7", "content": "<s>"}} }, "", "added_tokens"},
		{"more merges than the vocabulary allows", func(f map[string]any) { model(f)["merges"] = manyMerges }, "", "model.merges"},
		{"merge of three tokens", func(f map[string]any) { model(f)["merges"] = []any{[]any{"a", "b", "ab"}} }, "", "model.merges[0]"},
		{"merge of unknown tokens", func(f map[string]any) { model(f)["merges"] = []any{"x y"} }, "", "BPE merge 0"},
		{"template id in the billions", func(f map[string]any) {
			f["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}, map[string]any{"Sequence": map[string]any{"id": "A"}}},
				"special_tokens": map[string]any{"<s>": map[string]any{"ids": []any{4e9}}}}
		}, "", "post_processor"},
		{"bert cls id beyond the vocabulary", func(f map[string]any) {
			f["post_processor"] = map[string]any{"type": "BertProcessing", "cls": []any{"<s>", 1e6}, "sep": []any{"<s>", 3}}
		}, "", "post_processor"},
		{"sequence nested too deep", func(f map[string]any) { f["normalizer"] = nestedSequence(maxNesting + 2) }, "", "nested"},
		{"regex pattern too long", func(f map[string]any) {
			f["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": strings.Repeat("a", maxPatternLen+1)}}
		}, "", "Split pre-tokenizer"},
		{"regex Replace decoder", func(f map[string]any) {
			f["decoder"] = map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": "a+"}, "content": "b"}
		}, "", "Replace decoder"},
		{"deeply nested JSON", nil, `{"model":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, "depth"},
		{"not JSON", nil, "\x00\x01\x02", "invalid character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				data = smallTokenizer(t, tc.edit)
			}
			path := filepath.Join(t.TempDir(), "tokenizer.json")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path)
			if !errors.Is(err, formats.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || !strings.Contains(msg, path) || len(msg) > 300 {
				t.Errorf("error %q does not name %q and the file, or is too long", msg, tc.want)
			}
		})
	}
	// The unedited file loads.
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	os.WriteFile(path, smallTokenizer(t, nil), 0o644)
	if _, err := Load(path); err != nil {
		t.Fatal(err)
	}
}

// TestLoadNotRegular checks that Load refuses a file that is too large
// and anything that is not a regular file, without reading it.
func TestLoadNotRegular(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, p := range []string{big, os.DevNull, dir + "/missing.json", t.TempDir()} {
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), filepath.Base(p)) {
			t.Errorf("Load(%s): err %v, want an error naming the file", p, err)
		}
	}
	// A tokenizer_config.json that is not a regular file is refused too.
	tdir := t.TempDir()
	os.WriteFile(filepath.Join(tdir, "tokenizer.json"), smallTokenizer(t, nil), 0o644)
	if err := os.Mkdir(filepath.Join(tdir, "tokenizer_config.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(tdir); !errors.Is(err, formats.ErrInvalid) {
		t.Errorf("directory as tokenizer_config.json: err %v, want ErrInvalid", err)
	}
}

// TestCatastrophicPattern checks that a Split pattern that backtracks
// exponentially fails within seconds with an error naming the pattern.
func TestCatastrophicPattern(t *testing.T) {
	defer func(d time.Duration) { matchTimeout = d }(matchTimeout)
	matchTimeout = 200 * time.Millisecond
	const expr = `(a|aa)+$`
	tok := byteLevelTokenizer(t, expr, nil)
	start := time.Now()
	ids, err := tok.EncodeContext(context.Background(), strings.Repeat("a", 200)+"!", false)
	if !errors.Is(err, ErrPattern) || !errors.Is(err, formats.ErrInvalid) || !strings.Contains(err.Error(), expr) {
		t.Fatalf("ids %v, err %v; want ErrPattern naming %s", ids, err, expr)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if ids := tok.Encode("aaaa", false); len(ids) == 0 {
		t.Error("a short input no longer encodes")
	}
	// A Replace normalizer's pattern is bounded as well, at Load (the added
	// tokens are normalized) and when encoding.
	js := smallTokenizer(t, func(f map[string]any) {
		f["normalizer"] = map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": expr}, "content": "b"}
		f["added_tokens"] = []any{map[string]any{"id": 3, "content": strings.Repeat("a", 200) + "!", "normalized": true}}
	})
	if _, err := parse(js, nil); !errors.Is(err, ErrPattern) {
		t.Errorf("normalized added token: err %v, want ErrPattern", err)
	}
}

// TestEncodeCancel checks that encoding a large input stops soon after
// its context is cancelled: text of many words (byte-level BPE with the
// GPT-2 split), and one word of 32 MiB (SentencePiece-style BPE, whose
// merges run on one long word).
func TestEncodeCancel(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 4096; i++ {
		fmt.Fprintf(&sb, "word%d the %x ", i, i*7919)
	}
	words := strings.Repeat(sb.String(), 32<<20/sb.Len())
	for _, tc := range []struct {
		name string
		tok  *Tokenizer
		text string
	}{
		{"many words", byteLevelTokenizer(t, patternGPT2, []string{"Ġ t", "h e", "Ġt he"}), words},
		{"one long word", spmTokenizer(t), strings.Repeat("abthe", 32<<20/5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var cancelled time.Time
			time.AfterFunc(200*time.Millisecond, func() { cancelled = time.Now(); cancel() })
			_, err := tc.tok.EncodeContext(ctx, tc.text, false)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			// Generous for a loaded machine: between checks only the
			// normalizer runs unchecked (tens of milliseconds here).
			if d := time.Since(cancelled); d > 3*time.Second {
				t.Errorf("stopped %v after the cancellation", d)
			}
		})
	}
}

// TestCountElements checks the count of top-level elements that bounds a
// decoder before it allocates, on strings holding commas and brackets,
// escapes and nested values.
func TestCountElements(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		limit int
		want  int
	}{
		{`[]`, 10, 0},
		{` { } `, 10, 0},
		{`[1]`, 10, 1},
		{`[1, 2]`, 10, 2},
		{`["a,b", [1, 2], {"x": [3, 4]}]`, 10, 3},
		{`{"a": 1, "b\",[": 2}`, 10, 2},
		{`["\\", ","]`, 10, 2},
		{`[1, 2, 3, 4]`, 2, 3},
	} {
		if got := countElements([]byte(tc.raw), tc.limit); got != tc.want {
			t.Errorf("countElements(%s, %d) = %d, want %d", tc.raw, tc.limit, got, tc.want)
		}
	}
}
