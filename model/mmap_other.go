//go:build !unix

package model

import (
	"io"

	"github.com/vlora-convert/vlora-convert/formats"
)

// mapFile reads the regular file path into memory (no mmap on this
// platform): the stored bytes are then resident once.
func mapFile(path string) (*mapped, error) {
	f, err := formats.OpenRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return &mapped{data: data}, nil
}
