package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
)

// companionFiles are the files of a model directory, besides config.json
// and the weights, that running the model needs: its tokenizer, generation
// settings and image preprocessing.
var companionFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"generation_config.json", "preprocessor_config.json",
}

// maxCompanionBytes bounds a companion file copied (64 MiB).
const maxCompanionBytes = 64 << 20

// copyCompanions copies the companion files present in src into dst, each
// written atomically, so that a VLoRA directory can be used as the model
// directory was (generate, text data).
func copyCompanions(src, dst string) error {
	if filepath.Clean(src) == filepath.Clean(dst) {
		return nil
	}
	for _, name := range companionFiles {
		p := filepath.Join(src, name)
		st, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() || st.Size() > maxCompanionBytes {
			return fmt.Errorf("%s: %w: not a regular file of at most %d bytes", p, formats.ErrInvalid, maxCompanionBytes)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := formats.WriteFileAtomic(filepath.Join(dst, name), b); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
	}
	return nil
}
