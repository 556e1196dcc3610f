package vlora

import "fmt"

// Stored tensor names. A compound's base for suffix s is
// "vlora.compounds.{c}.{s}.base"; layer l's increment is
// "vlora.layers.{l}.{s}.lora_A" and ".lora_B" (low rank, W = base + B·A with
// B [rows, r] and A [r, cols]) or ".delta" (dense).

// BaseName is the stored name of compound c's base for suffix.
func BaseName(c int, suffix string) string {
	return fmt.Sprintf("vlora.compounds.%d.%s.base", c, suffix)
}

// LoraAName is the stored name of layer l's A factor [r, cols] for suffix.
func LoraAName(l int, suffix string) string {
	return fmt.Sprintf("vlora.layers.%d.%s.lora_A", l, suffix)
}

// LoraBName is the stored name of layer l's B factor [rows, r] for suffix.
func LoraBName(l int, suffix string) string {
	return fmt.Sprintf("vlora.layers.%d.%s.lora_B", l, suffix)
}

// DeltaName is the stored name of layer l's dense increment for suffix.
func DeltaName(l int, suffix string) string {
	return fmt.Sprintf("vlora.layers.%d.%s.delta", l, suffix)
}
