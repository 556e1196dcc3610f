package transformer

// LinearInput is the input of one linear layer of the block stack in the
// last training forward pass.
type LinearInput struct {
	// Weight is the name of the layer's weight parameter, stored
	// [out, in].
	Weight string
	// X holds Rows samples of Cols input features, row-major. It is owned
	// by the Trainer and valid until the next Forward.
	X          []float32
	Rows, Cols int
}

// LinearInputs returns, for every linear layer of the block stack whose
// weight is stored [out, in], the input it saw in the last Forward: the
// first norm's output for the query, key and value projections (the block
// input for post-norm blocks), the attention output for the output
// projection, the MLP input for the gate and up projections and the
// activation for the down projection. Layers stored [in, out] (GPT-2's
// Conv1D) are left out. It returns nil before the first Forward.
func (t *Trainer) LinearInputs() []LinearInput {
	p := t.p
	if p == nil {
		return nil
	}
	var out []LinearInput
	add := func(l *linear, x []float32) {
		if l.w == nil || l.inOut || x == nil {
			return
		}
		out = append(out, LinearInput{Weight: l.w.Name, X: x, Rows: p.N, Cols: l.in})
	}
	for i := range p.n.layers {
		l, tp := &p.n.layers[i], &p.layers[i]
		a := &l.attn
		if a.fused {
			add(&a.qkv, tp.attnIn)
		} else {
			add(&a.q, tp.attnIn)
			add(&a.k, tp.attnIn)
			add(&a.v, tp.attnIn)
		}
		add(&a.o, tp.att)
		mp := &l.mlp
		if mp.gated {
			add(&mp.gate, tp.mlpIn)
		}
		add(&mp.up, tp.mlpIn)
		add(&mp.down, tp.act)
	}
	return out
}
