package quant

// MarshalText encodes s in its String form, or "none" for the zero scheme
// (no quantization), so that a Scheme is a JSON string.
func (s Scheme) MarshalText() ([]byte, error) {
	if s == (Scheme{}) {
		return []byte("none"), nil
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads what MarshalText writes.
func (s *Scheme) UnmarshalText(b []byte) error {
	if str := string(b); str == "none" || str == "" {
		*s = Scheme{}
		return nil
	}
	v, err := ParseScheme(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
