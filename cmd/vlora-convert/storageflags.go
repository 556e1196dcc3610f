package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/vlora-convert/vlora-convert/formats"
	"github.com/vlora-convert/vlora-convert/quant"
	"github.com/vlora-convert/vlora-convert/vlora"
)

// storageFlags select how the written file stores its tensors: a float
// dtype, or quantized codes for its 2-D tensors (--dtype int8|int4|int3|int2
// or a scheme, --group-size, --quant per family).
type storageFlags struct {
	dtype     string
	groupSize int
	quant     string

	// float and plan are set by complete: the float dtype of the tensors
	// not quantized, and the quantization plan (zero: none).
	float formats.DType
	plan  vlora.QuantPlan
}

// addFlags registers --dtype, --group-size and --quant.
func (q *storageFlags) addFlags(fl *pflag.FlagSet, dtypeDefault string) {
	fl.StringVar(&q.dtype, "dtype", dtypeDefault, `stored dtype: f32, f16, bf16, or quantized 2-D tensors: int8 (per-row scales), int4, int3, int2 (groups of 32), full-range codes with F16 scales; a scheme such as int4/g64 (symmetric) or int4/g32/full is taken as written`)
	fl.IntVar(&q.groupSize, "group-size", 0, "values per F16 scale of --dtype intN and --quant (default 32 for int4 and below, one row for int8)")
	fl.StringVar(&q.quant, "quant", "", `mixed precision per family of 2-D tensors, over --dtype: e.g. "bases=int8,factors=int4,passthrough=int8" (families bases, factors, passthrough; "none" keeps a family in float)`)
}

// set reports whether any storage flag was given.
func (q *storageFlags) set() bool { return q.dtype != "" || q.quant != "" }

// complete parses the flags into float and plan. Names are
// case-insensitive. A flag that would do nothing in the combination given
// (--group-size with float storage, one --quant family twice) is refused.
// Errors are usage errors.
func (q *storageFlags) complete() error {
	q.float, q.plan = formats.F32, vlora.QuantPlan{}
	if err := intRange("group-size", q.groupSize, 0, quant.MaxGroupSize); err != nil {
		return err
	}
	if err := q.parse(); err != nil {
		return err
	}
	if q.groupSize != 0 && !q.plan.Active() {
		return usagef("--group-size %d sets the values per scale of quantized storage; --dtype %s stores floats (give --dtype int4, int8, ... or --quant)", q.groupSize, cmpOr(q.dtype, "f32"))
	}
	return nil
}

// cmpOr returns s, or def when s is empty.
func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parse reads --dtype and --quant into float and plan.
func (q *storageFlags) parse() error {
	switch strings.ToLower(q.dtype) {
	case "", "f32", "float32":
	case "f16", "float16":
		q.float = formats.F16
	case "bf16", "bfloat16":
		q.float = formats.BF16
	default:
		s, err := q.scheme(q.dtype)
		if err != nil {
			return usagef("--dtype %q: %v", q.dtype, err)
		}
		q.plan = vlora.UniformPlan(s)
	}
	if q.quant == "" {
		return nil
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(q.quant, ",") {
		fam, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usagef("--quant %q: want family=scheme pairs", q.quant)
		}
		fam = strings.ToLower(strings.TrimSpace(fam))
		if seen[fam] {
			return usagef("--quant %q: family %s given twice", q.quant, fam)
		}
		seen[fam] = true
		s, err := q.scheme(v)
		if err != nil {
			return usagef("--quant %s: %v", kv, err)
		}
		switch fam {
		case vlora.FamilyBases:
			q.plan.Bases = s
		case vlora.FamilyFactors:
			q.plan.Factors = s
		case vlora.FamilyPassthrough:
			q.plan.Passthrough = s
		default:
			return usagef("--quant: family %q (want bases, factors or passthrough)", fam)
		}
	}
	return nil
}

// scheme parses one quantized dtype: "none" (float), "intN" with the
// defaults (full-range codes; groups of --group-size, else 32 below 8
// bits and one row at 8), or a quant.ParseScheme string taken as written.
func (q *storageFlags) scheme(v string) (quant.Scheme, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "none" {
		return quant.Scheme{}, nil
	}
	if strings.Contains(v, "/") {
		if q.groupSize != 0 {
			return quant.Scheme{}, fmt.Errorf("%w: --group-size with an explicit scheme", formats.ErrInvalid)
		}
		return quant.ParseScheme(v)
	}
	s, err := quant.ParseScheme(v)
	if err != nil {
		return s, err
	}
	s.Full = true
	switch {
	case q.groupSize > 0:
		s.GroupSize = q.groupSize
	case s.Bits < 8:
		s.GroupSize = 32
	}
	return s, nil
}

// apply sets the storage of vm as the flags say, when any was given: its
// float dtype, and the plan when quantized (distillation then trains for
// it; without distillation Save rounds to nearest). Given a float dtype
// alone, a quantized file is stored in float again.
func (q *storageFlags) apply(vm *vlora.Model) {
	if !q.set() {
		return
	}
	vm.Manifest.DType = q.float.String()
	vm.Manifest.Quant = nil
	if q.plan.Active() {
		plan := q.plan
		vm.Manifest.Quant = &plan
	}
}
