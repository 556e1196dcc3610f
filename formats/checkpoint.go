package formats

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// IndexFile is the name of the Hugging Face shard index.
const IndexFile = "model.safetensors.index.json"

// SingleFile is the name of an unsharded Hugging Face checkpoint.
const SingleFile = "model.safetensors"

var shardPattern = regexp.MustCompile(`^model-(\d+)-of-(\d+)\.safetensors$`)

// Checkpoint is a Hugging Face model directory: config.json plus one
// safetensors file or several shards. Tensors are read lazily.
type Checkpoint struct {
	// Dir is the model directory.
	Dir string
	// Config is the parsed config.json, or nil when the directory has none.
	Config *Config
	// Files are the open safetensors files, in shard order.
	Files  []*File
	byName map[string]*File
	names  []string
}

// OpenCheckpoint opens the model directory dir. It uses
// model.safetensors.index.json when present and valid; when the index is
// missing or malformed it falls back to the model-*-of-*.safetensors shards
// present, and then to model.safetensors. A tensor present in two files, or an
// index naming a file outside dir, is an error.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("model directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: %w: not a directory", dir, ErrInvalid)
	}
	ck := &Checkpoint{Dir: dir, byName: map[string]*File{}}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		cfg, err := ReadConfig(filepath.Join(dir, ConfigFile))
		if err != nil {
			return nil, err
		}
		ck.Config = cfg
	}
	files, err := checkpointFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, p := range files {
		f, err := Open(p)
		if err != nil {
			ck.Close()
			return nil, err
		}
		ck.Files = append(ck.Files, f)
		for _, name := range f.Names() {
			if prev, dup := ck.byName[name]; dup {
				ck.Close()
				return nil, fmt.Errorf("%s: %w: tensor %q is also stored in %s", p, ErrInvalid, name, prev.Path())
			}
			ck.byName[name] = f
			ck.names = append(ck.names, name)
		}
	}
	return ck, nil
}

// checkpointFiles lists the safetensors files making up the checkpoint in dir.
func checkpointFiles(dir string) ([]string, error) {
	idxPath := filepath.Join(dir, IndexFile)
	if raw, err := os.ReadFile(idxPath); err == nil {
		files, err := parseIndex(dir, idxPath, raw)
		if err == nil {
			return files, nil
		}
		if isOutside(err) {
			return nil, err
		}
		// A malformed index is not fatal: fall back to the shards present.
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type shard struct {
		path     string
		idx, cnt int
	}
	var shards []shard
	for _, e := range entries {
		m := shardPattern.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		var i, n int
		fmt.Sscan(m[1], &i)
		fmt.Sscan(m[2], &n)
		shards = append(shards, shard{filepath.Join(dir, e.Name()), i, n})
	}
	if len(shards) > 0 {
		sort.Slice(shards, func(a, b int) bool { return shards[a].idx < shards[b].idx })
		n := shards[0].cnt
		if len(shards) != n {
			return nil, fmt.Errorf("%s: %w: found %d of %d shards model-*-of-%05d.safetensors", dir, ErrInvalid, len(shards), n, n)
		}
		out := make([]string, len(shards))
		for i, s := range shards {
			if s.cnt != n || s.idx != i+1 {
				return nil, fmt.Errorf("%s: %w: inconsistent shard names (%s)", dir, ErrInvalid, filepath.Base(s.path))
			}
			out[i] = s.path
		}
		return out, nil
	}
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		return []string{single}, nil
	}
	// Any single *.safetensors file will do (for example a VLoRA file).
	var any []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".safetensors") {
			any = append(any, filepath.Join(dir, e.Name()))
		}
	}
	if len(any) == 1 {
		return any, nil
	}
	return nil, fmt.Errorf("%s: %w: no %s, %s or model-*-of-*.safetensors shards", dir, ErrInvalid, SingleFile, IndexFile)
}

type outsideError struct{ error }

func isOutside(err error) bool { _, ok := err.(outsideError); return ok }

// parseIndex reads a shard index and returns the distinct shard paths in
// first-appearance order. Files outside dir are rejected.
func parseIndex(dir, idxPath string, raw []byte) ([]string, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", idxPath, ErrInvalid, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: %w: empty weight_map", idxPath, ErrInvalid)
	}
	seen := map[string]bool{}
	var names []string
	for tensor, file := range idx.WeightMap {
		clean := filepath.Clean(file)
		if filepath.IsAbs(file) || clean != filepath.Base(clean) || clean == "." || clean == ".." {
			return nil, outsideError{fmt.Errorf("%s: %w: tensor %q is mapped to %q, outside the model directory", idxPath, ErrInvalid, tensor, file)}
		}
		if !seen[clean] {
			seen[clean] = true
			names = append(names, clean)
		}
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
		if _, err := os.Stat(out[i]); err != nil {
			return nil, fmt.Errorf("%s: %w: shard %s: %v", idxPath, ErrInvalid, n, err)
		}
	}
	return out, nil
}

// Names returns every tensor name, in file then storage order.
func (c *Checkpoint) Names() []string { return append([]string(nil), c.names...) }

// Info returns the description of the named tensor.
func (c *Checkpoint) Info(name string) (*TensorInfo, bool) {
	f, ok := c.byName[name]
	if !ok {
		return nil, false
	}
	return f.Info(name)
}

// Has reports whether the checkpoint stores the named tensor.
func (c *Checkpoint) Has(name string) bool { _, ok := c.byName[name]; return ok }

func (c *Checkpoint) file(name string) (*File, error) {
	f, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w: no tensor %q", c.Dir, ErrInvalid, name)
	}
	return f, nil
}

// ReadFloat32 reads the named tensor as float32.
func (c *Checkpoint) ReadFloat32(name string) ([]float32, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadFloat32(name)
}

// ReadFloat64 reads the named tensor as float64.
func (c *Checkpoint) ReadFloat64(name string) ([]float64, error) {
	f, err := c.file(name)
	if err != nil {
		return nil, err
	}
	return f.ReadFloat64(name)
}

// Close closes every file of the checkpoint.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.Files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
