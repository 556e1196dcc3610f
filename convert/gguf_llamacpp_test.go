package convert_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/vlora-convert/vlora-convert/convert"
	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/formats/gguf"
	"github.com/vlora-convert/vlora-convert/internal/synth"
	"github.com/vlora-convert/vlora-convert/internal/testenv"
	"github.com/vlora-convert/vlora-convert/model"
	"github.com/vlora-convert/vlora-convert/tokenizer"
)

// llamacppDir returns tools/llamacpp with node-llama-cpp installed, running
// `npm ci` there when node_modules is missing. Without npm the test is
// skipped, except under CI=true, where it fails.
func llamacppDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "tools", "llamacpp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-llama-cpp", "package.json")); err == nil {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm is required under CI=true to install node-llama-cpp: %v", err)
		}
		t.Skipf("npm is not installed; skipping the llama.cpp comparison: %v", err)
	}
	installOnce.Do(func() {
		// --ignore-scripts: the prebuilt CPU binaries ship inside the
		// package; its postinstall step would only try to build or download.
		cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "NODE_LLAMA_CPP_SKIP_DOWNLOAD=true")
		out, err := cmd.CombinedOutput()
		if err != nil {
			installErr = err
			installOut = out
		}
	})
	if installErr != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, installErr, installOut)
	}
	return dir
}

var (
	installOnce sync.Once
	installErr  error
	installOut  []byte
)

// llamaJob is one decoding job of tools/llamacpp/decode.mjs.
type llamaJob struct {
	Model     string `json:"model"`
	PromptIDs []int  `json:"prompt_ids,omitempty"`
	Prompt    string `json:"prompt,omitempty"`
	AddBOS    bool   `json:"add_bos,omitempty"`
	Special   bool   `json:"special,omitempty"`
	Tokens    int    `json:"tokens"`
}

// llamaResult is decode.mjs's answer to a job.
type llamaResult struct {
	Model  string `json:"model"`
	Prompt []int  `json:"prompt"`
	Tokens []int  `json:"tokens"`
	Text   string `json:"text"`
}

// llamacppDecode greedy-decodes every job with llama.cpp in one Node
// process. One thread: the comparison is of tokens, and a single thread
// keeps it fast on a loaded machine.
func llamacppDecode(t *testing.T, jobs []llamaJob) []llamaResult {
	t.Helper()
	dir := llamacppDir(t)
	var in bytes.Buffer
	for _, j := range jobs {
		b, _ := json.Marshal(j)
		in.Write(append(b, '\n'))
	}
	cmd := exec.Command("node", "decode.mjs", "--jobs", "--threads", "1")
	cmd.Dir = dir
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node decode.mjs: %v\n%s", err, stderr.Bytes())
	}
	var res []llamaResult
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r llamaResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("decode.mjs output %q: %v", line, err)
		}
		res = append(res, r)
	}
	if len(res) != len(jobs) {
		t.Fatalf("decode.mjs answered %d of %d jobs\n%s", len(res), len(jobs), stderr.Bytes())
	}
	return res
}

// ourGreedy decodes n tokens after prompt with the model at path through
// its key/value cache, taking the most likely token at every step; it also
// returns, for each step, the logits it chose from.
func ourGreedy(t *testing.T, path string, prompt []int, n int) (ids []int, logits [][]float32) {
	t.Helper()
	m, err := model.LoadAs(path, model.Auto)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dec, err := m.Net.NewDecoder(1, len(prompt)+n)
	if err != nil {
		t.Fatal(err)
	}
	var lg []float32
	for _, id := range prompt {
		if lg, err = dec.Step([]int{id}); err != nil {
			t.Fatal(err)
		}
	}
	vocab := m.Config.VocabSize
	for len(ids) < n {
		l := append([]float32(nil), lg[:vocab]...)
		best := 0
		for i, v := range l {
			if v > l[best] {
				best = i
			}
		}
		ids = append(ids, best)
		logits = append(logits, l)
		if len(ids) < n {
			if lg, err = dec.Step([]int{best}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ids, logits
}

// teacherForced runs the model at path on prompt followed by toks and
// returns, for each of toks, its rank among the model's logits at that
// position (0: the model's own greedy choice).
func teacherForced(t *testing.T, path string, prompt, toks []int) []int {
	t.Helper()
	m, err := model.LoadAs(path, model.Auto)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	dec, err := m.Net.NewDecoder(1, len(prompt)+len(toks))
	if err != nil {
		t.Fatal(err)
	}
	var lg []float32
	for _, id := range prompt {
		if lg, err = dec.Step([]int{id}); err != nil {
			t.Fatal(err)
		}
	}
	ranks := make([]int, len(toks))
	for i, id := range toks {
		r := 0
		for _, v := range lg[:m.Config.VocabSize] {
			if v > lg[id] {
				r++
			}
		}
		ranks[i] = r
		if i+1 < len(toks) {
			if lg, err = dec.Step([]int{id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ranks
}

// ggufCase is one model exported and decoded by both runtimes.
type ggufCase struct {
	name      string
	src       string // model directory or VLoRA file
	tokenizer string
	prompt    []int
}

// ggufCases returns bytellama (byte tokens: a Python prompt), the genuine
// tinystories260K (BOS, then "Once upon a time" in its SentencePiece
// tokens), a VLoRA file of bytellama (K=4, rank 16, SVD only) and bytegpt2.
func ggufCases(t *testing.T) []ggufCase {
	t.Helper()
	byteLlama := testenv.SharedModel(t, "bytellama")
	stories := testenv.SharedModel(t, "tinystories260K")
	vdir := t.TempDir()
	if _, err := convert.Compress(context.Background(), byteLlama, vdir, convert.Options{CompoundSize: 4, Rank: 16}); err != nil {
		t.Fatal(err)
	}
	return []ggufCase{
		{"bytellama", byteLlama, "", []int{100, 101, 102, 32, 109, 97, 105, 110, 40, 41, 58, 10}}, // "def main():\n"
		{"tinystories260K", stories, "", []int{1, 403, 407, 261, 378}},                            // <s> Once upon a time
		{"bytellama-vlora", vdir, byteLlama, []int{105, 109, 112, 111, 114, 116, 32}},             // "import "
		{"bytegpt2", testenv.SharedModel(t, "bytegpt2"), "", []int{99, 108, 97, 115, 115, 32}},    // "class "
	}
}

// TestGGUFMatchesLlamaCpp exports each model as an F32 GGUF and checks that
// llama.cpp's greedy tokens equal ours for the first 32 tokens.
func TestGGUFMatchesLlamaCpp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp; skipped with -short")
	}
	llamacppDir(t)
	const n = 32
	cases := ggufCases(t)
	dir := t.TempDir()
	var jobs []llamaJob
	for _, c := range cases {
		out := filepath.Join(dir, c.name+".gguf")
		if err := convert.ExpandGGUF(context.Background(), c.src, out, convert.GGUFOptions{Type: gguf.F32, Tokenizer: c.tokenizer}); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		jobs = append(jobs, llamaJob{Model: out, PromptIDs: c.prompt, Tokens: n})
	}
	res := llamacppDecode(t, jobs)
	for i, c := range cases {
		ours, _ := ourGreedy(t, c.src, c.prompt, n)
		if !slices.Equal(ours, res[i].Tokens) {
			t.Errorf("%s: greedy tokens differ\n ours:      %v\n llama.cpp: %v", c.name, ours, res[i].Tokens)
		} else {
			t.Logf("%s: %d tokens equal: %q", c.name, n, res[i].Text)
		}
	}
}

// TestGGUFQuantizedDecodes exports each model as F16 and Q8_0 and checks
// that llama.cpp's greedy tokens are ones the F32 model also ranks at the
// top. Rounding the weights may flip a near tie, after which the two
// continuations part, so the check is teacher-forced: each of llama.cpp's
// tokens, given the tokens before it, must be among our 3 most likely
// (minRankOK) and our most likely in at least 90% of the positions
// (minTop1): a wrong tensor layout or scale fails both by far.
func TestGGUFQuantizedDecodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp; skipped with -short")
	}
	llamacppDir(t)
	const (
		n         = 32
		minRankOK = 3
		minTop1   = 0.9
	)
	cases := ggufCases(t)[:2]
	dir := t.TempDir()
	var jobs []llamaJob
	type exp struct {
		c   ggufCase
		typ gguf.Type
	}
	var exps []exp
	for _, c := range cases {
		for _, typ := range []gguf.Type{gguf.F16, gguf.Q8_0} {
			out := filepath.Join(dir, c.name+"-"+typ.String()+".gguf")
			if err := convert.ExpandGGUF(context.Background(), c.src, out, convert.GGUFOptions{Type: typ, Tokenizer: c.tokenizer}); err != nil {
				t.Fatalf("%s %v: %v", c.name, typ, err)
			}
			jobs = append(jobs, llamaJob{Model: out, PromptIDs: c.prompt, Tokens: n})
			exps = append(exps, exp{c, typ})
		}
	}
	res := llamacppDecode(t, jobs)
	for i, e := range exps {
		ours, _ := ourGreedy(t, e.c.src, e.c.prompt, n)
		prefix := 0
		for prefix < n && ours[prefix] == res[i].Tokens[prefix] {
			prefix++
		}
		ranks := teacherForced(t, e.c.src, e.c.prompt, res[i].Tokens)
		top1 := 0
		for _, r := range ranks {
			if r == 0 {
				top1++
			}
		}
		t.Logf("%s %v: greedy tokens equal for the first %d of %d; teacher-forced, %d of %d are our top token; ranks %v", e.c.name, e.typ, prefix, n, top1, n, ranks)
		if slices.Max(ranks) >= minRankOK || float64(top1) < minTop1*n {
			t.Errorf("%s %v: llama.cpp's tokens are not the F32 model's: ranks %v (want all < %d, ≥ %.0f%% zero)", e.c.name, e.typ, ranks, minRankOK, 100*minTop1)
		}
	}
}

// TestGGUFTokenizerMatchesLlamaCpp writes the real Llama 2, Llama 3 and
// Qwen3 tokenizers into GGUF files (with a tiny random Llama of their
// vocabulary size) and checks that llama.cpp encodes the reference texts
// as Hugging Face does (golden.json's ids, special tokens parsed) and
// agrees on adding BOS. Texts on which llama.cpp's own tokenizer is known
// to differ from Hugging Face's are logged (Qwen3's NFC normalizer, which
// llama.cpp does not apply), and the test requires at least minAgree of
// them to match exactly. Llama 3 and Qwen3, with vocabularies of 128 K and
// 152 K tokens, run only with VLORA_QUALITY=1 (as in CI).
func TestGGUFTokenizerMatchesLlamaCpp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp; skipped with -short")
	}
	llamacppDir(t)
	const minAgree = 0.9
	type golden struct {
		Cases []struct {
			Text           string `json:"text"`
			IDs            []int  `json:"ids"`
			IDsWithSpecial []int  `json:"ids_with_special"`
		} `json:"cases"`
	}
	dir := t.TempDir()
	names := []string{"llama2"}
	if os.Getenv("VLORA_QUALITY") == "1" {
		names = append(names, "llama3", "qwen3")
	}
	var jobs []llamaJob
	var want [][]int
	var texts []string
	for _, name := range names {
		tokDir := testenv.Shared(t, filepath.Join("tokenizers", name))
		raw, err := os.ReadFile(filepath.Join(tokDir, "golden.json"))
		if err != nil {
			t.Fatal(err)
		}
		var g golden
		if err := json.Unmarshal(raw, &g); err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.Load(tokDir)
		if err != nil {
			t.Fatal(err)
		}
		mdir := filepath.Join(dir, name)
		shape := synth.LlamaShape{Layers: 1, Hidden: 32, Intermediate: 32, Heads: 2, KVHeads: 1, Vocab: tok.VocabSize()}
		if err := synth.WriteLlama(mdir, shape, formats.F32, 1); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name+".gguf")
		if err := convert.ExpandGGUF(context.Background(), mdir, out, convert.GGUFOptions{Type: gguf.F16, Tokenizer: tokDir}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, c := range g.Cases {
			jobs = append(jobs, llamaJob{Model: out, Prompt: c.Text, Special: true, AddBOS: len(c.IDsWithSpecial) > len(c.IDs)})
			want = append(want, c.IDsWithSpecial)
			texts = append(texts, name)
		}
	}
	res := llamacppDecode(t, jobs)
	agree := map[string]int{}
	total := map[string]int{}
	for i, r := range res {
		total[texts[i]]++
		if slices.Equal(r.Prompt, want[i]) || (len(r.Prompt) == 0 && len(want[i]) == 0) {
			agree[texts[i]]++
			continue
		}
		t.Logf("%s: %q\n hf:        %v\n llama.cpp: %v", texts[i], truncate(jobs[i].Prompt, 60), head(want[i]), head(r.Prompt))
	}
	for _, name := range names {
		t.Logf("%s: llama.cpp encodes %d of %d reference texts as Hugging Face does", name, agree[name], total[name])
		if float64(agree[name]) < minAgree*float64(total[name]) {
			t.Errorf("%s: only %d of %d texts encode alike", name, agree[name], total[name])
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func head(ids []int) []int {
	if len(ids) > 16 {
		return ids[:16]
	}
	return ids
}

// TestGGUFModelTokenizersMatch checks that llama.cpp encodes text with the
// tokenizers of the exported tinystories260K (SentencePiece-style, scores
// from the merge ranks) and bytellama (bytes) as this project's tokenizer
// does, BOS included: the stories of tinystories260K's calib.txt and the
// Python lines of stdlib-text.
func TestGGUFModelTokenizersMatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs llama.cpp; skipped with -short")
	}
	llamacppDir(t)
	const lines = 24
	dir := t.TempDir()
	var jobs []llamaJob
	var want [][]int
	for _, c := range []struct{ model, text string }{
		{"tinystories260K", "data/tinystories260K/calib.txt"},
		{"bytellama", "data/stdlib-text/eval.txt"},
	} {
		src := testenv.SharedModel(t, c.model)
		out := filepath.Join(dir, c.model+".gguf")
		if err := convert.ExpandGGUF(context.Background(), src, out, convert.GGUFOptions{Type: gguf.F16}); err != nil {
			t.Fatal(err)
		}
		g, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		addBOS, _ := g.KV["tokenizer.ggml.add_bos_token"].(bool)
		g.Close()
		tok, err := tokenizer.Load(src)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(testenv.Shared(t, c.text))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.TrimSpace(line) == "" || !utf8.ValidString(line) {
				continue
			}
			jobs = append(jobs, llamaJob{Model: out, Prompt: line, AddBOS: addBOS})
			want = append(want, tok.Encode(line, true))
			if n++; n == lines {
				break
			}
		}
	}
	res := llamacppDecode(t, jobs)
	for i, r := range res {
		if !slices.Equal(r.Prompt, want[i]) {
			t.Errorf("%s: %q\n ours:      %v\n llama.cpp: %v", filepath.Base(jobs[i].Model), truncate(jobs[i].Prompt, 60), head(want[i]), head(r.Prompt))
		}
	}
}
