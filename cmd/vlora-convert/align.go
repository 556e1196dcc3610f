package main

import (
	"github.com/vlora-convert/vlora-convert/align"
	"github.com/vlora-convert/vlora-convert/model"
)

// align re-expresses the calibration model under a, so that the Gram
// matrices of the whitened initialisation and the refit's targets are taken
// in the coordinates of the aligned layers. A teacher shared with the
// distillation stage, which trains against the original, is not changed: the
// original is loaded again (resident) and aligned instead.
func (c *calibration) align(modelDir string, a *align.Alignment) error {
	if c.shared {
		t, err := model.LoadDense(modelDir)
		if err != nil {
			return err
		}
		c.teacher, c.shared = t, false
	}
	for name, p := range c.teacher.Net.Params {
		if err := align.Apply(a, name, p.Data); err != nil {
			return err
		}
	}
	return nil
}
