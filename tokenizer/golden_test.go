package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vlora-convert/vlora-convert/internal/testenv"
)

type goldenCase struct {
	Text           string `json:"text"`
	IDs            []int  `json:"ids"`
	IDsWithSpecial []int  `json:"ids_with_special"`
	Decoded        string `json:"decoded"`
}

func loadGolden(t testing.TB, name string) (*Tokenizer, []goldenCase) {
	t.Helper()
	return loadGoldenDir(t, testenv.Shared(t, filepath.Join("tokenizers", name)))
}

// loadGoldenDir reads a tokenizer and its golden.json from dir.
func loadGoldenDir(t testing.TB, dir string) (*Tokenizer, []goldenCase) {
	t.Helper()
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return tok, g.Cases
}

// TestGolden compares encodings and decodings with those of Hugging Face's
// implementation on real tokenizers: the three of ../shared/tokenizers, and
// any folder listed in VLORA_TOKENIZER_GOLDEN (separated by the path list
// separator) that holds a tokenizer.json and a golden.json of the same
// format.
func TestGolden(t *testing.T) {
	for name, dir := range goldenDirs() {
		t.Run(name, func(t *testing.T) {
			tok, cases := loadGoldenDir(t, dir(t))
			matched := 0
			for i, c := range cases {
				got := tok.Encode(c.Text, false)
				if slices.Equal(got, c.IDs) {
					matched++
				} else {
					t.Errorf("case %d %.40q: ids\n got %v\nwant %v", i, c.Text, head(got), head(c.IDs))
				}
				got = tok.Encode(c.Text, true)
				if slices.Equal(got, c.IDsWithSpecial) {
					matched++
				} else {
					t.Errorf("case %d %.40q: ids with special\n got %v\nwant %v", i, c.Text, head(got), head(c.IDsWithSpecial))
				}
				if d := tok.Decode(c.IDs, false); d != c.Decoded {
					t.Errorf("case %d %.40q: decoded %.80q, want %.80q", i, c.Text, d, c.Decoded)
				}
			}
			t.Logf("%s: %d/%d encodings match", name, matched, 2*len(cases))
		})
	}
}

// goldenDirs returns, by name, functions giving the folders of the golden
// tokenizers (see TestGolden).
func goldenDirs() map[string]func(t testing.TB) string {
	dirs := map[string]func(t testing.TB) string{}
	for _, name := range []string{"llama2", "llama3", "qwen3"} {
		dirs[name] = func(t testing.TB) string { return testenv.Shared(t, filepath.Join("tokenizers", name)) }
	}
	for _, dir := range filepath.SplitList(os.Getenv("VLORA_TOKENIZER_GOLDEN")) {
		dirs[filepath.Base(dir)] = func(testing.TB) string { return dir }
	}
	return dirs
}

func head(ids []int) []int {
	if len(ids) > 30 {
		return ids[:30]
	}
	return ids
}
