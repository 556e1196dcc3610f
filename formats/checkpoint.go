package formats

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
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
// model.safetensors.index.json when present and well formed; when the index
// is missing or is not a valid index document it falls back to the
// model-*-of-*.safetensors shards present, then to model.safetensors, then to
// the only *.safetensors file of dir. A well-formed index that names a file
// outside dir, a shard that does not exist, or a tensor its shard does not
// hold is an error, as is a tensor stored in two files.
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
	files, idx, err := checkpointFiles(dir)
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
	if idx != nil {
		if err := idx.check(ck); err != nil {
			ck.Close()
			return nil, err
		}
	}
	return ck, nil
}

// shardIndex is a parsed model.safetensors.index.json.
type shardIndex struct {
	path string
	// weightMap maps each tensor name to the path of its shard.
	weightMap map[string]string
}

// check reports a tensor the index lists that its shard does not hold.
func (x *shardIndex) check(ck *Checkpoint) error {
	names := make([]string, 0, len(x.weightMap))
	for name := range x.weightMap {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := x.weightMap[name]
		f, ok := ck.byName[name]
		if !ok || f.Path() != want {
			return fmt.Errorf("%s: %w: tensor %q is mapped to %s, which does not hold it", x.path, ErrInvalid, name, filepath.Base(want))
		}
	}
	return nil
}

// checkpointFiles lists the safetensors files making up the checkpoint in
// dir, and the shard index when one was used.
func checkpointFiles(dir string) ([]string, *shardIndex, error) {
	idxPath := filepath.Join(dir, IndexFile)
	raw, err := readSmallFile(idxPath, MaxConfigSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if err == nil {
		idx, err := parseIndex(dir, idxPath, raw)
		if err == nil {
			files, err := idx.files()
			if err != nil {
				return nil, nil, err
			}
			return files, idx, nil
		}
		if !errors.Is(err, errMalformedIndex) {
			return nil, nil, err
		}
		// A document that is not an index is not fatal: fall back to the
		// files present.
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
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
		i, err1 := strconv.Atoi(m[1])
		n, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil {
			return nil, nil, fmt.Errorf("%s: %w: shard number out of range in %s", dir, ErrInvalid, e.Name())
		}
		shards = append(shards, shard{filepath.Join(dir, e.Name()), i, n})
	}
	if len(shards) > 0 {
		sort.Slice(shards, func(a, b int) bool { return shards[a].idx < shards[b].idx })
		n := shards[0].cnt
		if len(shards) != n {
			return nil, nil, fmt.Errorf("%s: %w: found %d of %d shards model-*-of-%05d.safetensors", dir, ErrInvalid, len(shards), n, n)
		}
		out := make([]string, len(shards))
		for i, s := range shards {
			if s.cnt != n || s.idx != i+1 {
				return nil, nil, fmt.Errorf("%s: %w: inconsistent shard names (%s)", dir, ErrInvalid, filepath.Base(s.path))
			}
			out[i] = s.path
		}
		return out, nil, nil
	}
	single := filepath.Join(dir, SingleFile)
	if _, err := os.Stat(single); err == nil {
		return []string{single}, nil, nil
	}
	// Any single *.safetensors file will do (for example a VLoRA file).
	var any []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".safetensors") {
			any = append(any, filepath.Join(dir, e.Name()))
		}
	}
	if len(any) == 1 {
		return any, nil, nil
	}
	return nil, nil, fmt.Errorf("%s: %w: no %s, %s or model-*-of-*.safetensors shards", dir, ErrInvalid, SingleFile, IndexFile)
}

// errMalformedIndex marks an index file that is not an index document, as
// opposed to an index whose content is wrong.
var errMalformedIndex = errors.New("not a shard index")

// parseIndex parses a shard index. Files outside dir are rejected.
func parseIndex(dir, idxPath string, raw []byte) (*shardIndex, error) {
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("%s: %w: %w: %v", idxPath, ErrInvalid, errMalformedIndex, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%s: %w: %w: empty weight_map", idxPath, ErrInvalid, errMalformedIndex)
	}
	names := make([]string, 0, len(idx.WeightMap))
	for tensor := range idx.WeightMap {
		names = append(names, tensor)
	}
	sort.Strings(names)
	x := &shardIndex{path: idxPath, weightMap: make(map[string]string, len(names))}
	for _, tensor := range names {
		file := idx.WeightMap[tensor]
		clean := filepath.Clean(file)
		if filepath.IsAbs(file) || clean != filepath.Base(clean) || clean == "." || clean == ".." {
			return nil, fmt.Errorf("%s: %w: tensor %q is mapped to %q, which is not a file in the model directory", idxPath, ErrInvalid, tensor, file)
		}
		x.weightMap[tensor] = filepath.Join(dir, clean)
	}
	return x, nil
}

// files returns the distinct shard paths of the index, sorted, after checking
// that each exists.
func (x *shardIndex) files() ([]string, error) {
	// first maps each shard to the alphabetically first tensor it holds, to
	// name in errors.
	first := map[string]string{}
	var out []string
	for tensor, p := range x.weightMap {
		prev, seen := first[p]
		if !seen {
			out = append(out, p)
		}
		if !seen || tensor < prev {
			first[p] = tensor
		}
	}
	sort.Strings(out)
	for _, p := range out {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w: shard %s of tensor %q: %v", x.path, ErrInvalid, filepath.Base(p), first[p], err)
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
