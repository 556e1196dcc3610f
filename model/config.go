package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// ReadConfig returns the configuration of the model at path, a Hugging
// Face directory (its config.json) or a VLoRA file or directory (the
// configuration its manifest records), without reading weights.
func ReadConfig(path string) (*formats.Config, error) {
	if IsVLoRA(path) {
		mf, f, err := vlora.ReadManifest(path)
		if err != nil {
			return nil, err
		}
		f.Close()
		if len(mf.Config) == 0 {
			return nil, fmt.Errorf("%s: %w: the manifest records no model configuration", path, formats.ErrInvalid)
		}
		cfg, err := formats.ParseConfig(mf.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return cfg, nil
	}
	return formats.ReadConfig(filepath.Join(path, formats.ConfigFile))
}

// Dir returns the directory of the model at path: path itself, or the
// directory holding path when it is a file.
func Dir(path string) string {
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		return filepath.Dir(path)
	}
	return path
}

// GenerationConfigFile is the Hugging Face file of generation settings
// beside a model.
const GenerationConfigFile = "generation_config.json"

// maxGenerationConfigBytes bounds generation_config.json (1 MiB).
const maxGenerationConfigBytes = 1 << 20

// GenerationEOS returns the end-of-sequence ids that the
// generation_config.json in the directory of the model at path names
// (eos_token_id, a number or a list of numbers), none when the file is
// absent or names none. A file that is not a JSON object, or whose
// eos_token_id is not a non-negative integer or a list of them, is an error
// wrapping formats.ErrInvalid that names it.
func GenerationEOS(path string) ([]int, error) {
	p := filepath.Join(Dir(path), GenerationConfigFile)
	f, err := formats.OpenRegular(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxGenerationConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %w: %s", p, formats.ErrInvalid, fmt.Sprintf(format, a...))
	}
	if len(raw) > maxGenerationConfigBytes {
		return nil, bad("larger than %d bytes", maxGenerationConfigBytes)
	}
	var gc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &gc); err != nil || gc == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, bad("not a JSON object: %v", err)
	}
	v, ok := gc["eos_token_id"]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(v, &one) == nil && one >= 0 {
		return []int{one}, nil
	}
	var many []int
	if json.Unmarshal(v, &many) == nil {
		for _, id := range many {
			if id < 0 {
				return nil, bad("eos_token_id %s: want a non-negative integer or a list of them", v)
			}
		}
		return many, nil
	}
	return nil, bad("eos_token_id %.40s: want a non-negative integer or a list of them", v)
}
