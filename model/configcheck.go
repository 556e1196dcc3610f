package model

import (
	"fmt"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// CheckLayerCount checks the config's layer count against the layers the
// weights hold, before anything is sized by the config: a config that
// declares fewer layers would silently run another model, and one that
// declares more would size allocations for layers that do not exist.
// A config without a layer count is left to the architecture to reject.
// The error wraps formats.ErrInvalid and names the field.
func CheckLayerCount(cfg *formats.Config, stored int) error {
	if cfg.NumLayers != 0 && cfg.NumLayers != stored {
		return fmt.Errorf("%w: config field num_hidden_layers = %d, but the weights hold %d layers", formats.ErrInvalid, cfg.NumLayers, stored)
	}
	return nil
}

// storedLayers returns the number of layers in ck's layer stack.
func storedLayers(ck *formats.Checkpoint) (int, error) {
	st, err := vlora.DetectStack(ck.Names(), func(n string) vlora.TensorShape {
		ti, _ := ck.Info(n)
		return vlora.TensorShape{Shape: ti.Shape, DType: ti.DType.String()}
	})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", formats.ErrInvalid, err)
	}
	return st.NumLayers, nil
}
