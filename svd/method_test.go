package svd

import "testing"

func TestMethodStringParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Method
		wantErr bool
	}{
		{in: "exact", want: Exact},
		{in: "randomized", want: Randomized},
		{in: " Randomized ", want: Randomized},
		{in: "EXACT", want: Exact},
		{in: "random", wantErr: true},
		{in: "", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMethod(tc.in)
			if (err != nil) != tc.wantErr {
				t.Errorf("ParseMethod(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
				return
			}
			if !tc.wantErr && got != tc.want {
				t.Errorf("ParseMethod(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
	for _, m := range []Method{Exact, Randomized} {
		got, err := ParseMethod(m.String())
		if err != nil || got != m {
			t.Errorf("round trip of %v: got %v, %v", m, got, err)
		}
	}
	if got := Method(7).String(); got != "Method(7)" {
		t.Errorf("Method(7).String() = %q", got)
	}
}
