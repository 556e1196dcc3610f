package tokenizer

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/dlclark/regexp2/v2"
)

// scannerAlphabet mixes the characters the split patterns treat
// differently: letters of several scripts, digits and other numbers,
// apostrophes and contraction letters, ASCII and Unicode spaces, newlines,
// punctuation, symbols, marks and invalid UTF-8.
var scannerAlphabet = []string{
	"a", "b", "s", "t", "r", "e", "v", "m", "l", "d", "S", "T", "R", "E", "V", "M", "L", "D", "é", "ß", "Ж", "日", "ا", "न",
	"ǅ", "ʰ", "Σ", "x", "W", "\u0300", "/",
	"0", "1", "9", "٣", "½", "Ⅻ", "'", "'", "'", " ", " ", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\v", "\f",
	".", ",", "!", "-", "(", "{", "$", "😀", "\u0301", "\u200d", "_", "\x00", "\xff", "\xe6\x97",
}

func randomText(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(scannerAlphabet[r.IntN(len(scannerAlphabet))])
	}
	return b.String()
}

// TestScannerMatchesRegexp2 checks that the hand-written scanners split
// exactly like the general regex engine on the patterns they replace.
func TestScannerMatchesRegexp2(t *testing.T) {
	for name, expr := range map[string]string{"gpt2": patternGPT2, "cl100k": patternCL100K, "qwen": patternQwen, "o200k": patternO200K} {
		t.Run(name, func(t *testing.T) {
			sc, ok := knownScanner(expr)
			if !ok {
				t.Fatal("pattern not recognized")
			}
			ref := regexMatcher{regexp2.MustCompile(expr, regexp2.None), expr}
			r := rand.New(rand.NewPCG(1, 2))
			fixed := []string{"", "Hello world", "I'm ok  \n\n  you're FINE'S", "a  b   \n c\t\n", "12345 x1234y", " ?! \r\n\r\nz",
				"CamelCaseHTTPServer's", "ǅemal ʰab", "x/y//\n", "日本語ab"}
			for i := 0; i < 5000; i++ {
				s := ""
				if i < len(fixed) {
					s = fixed[i]
				} else {
					s = randomText(r, 1+r.IntN(24))
				}
				got, want := sc.find(nil, s), ref.find(nil, s)
				if !slices.Equal(got, want) {
					t.Fatalf("%q: scanner %v, regexp2 %v", s, got, want)
				}
			}
		})
	}
}
