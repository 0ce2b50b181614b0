package configs

import "testing"

// Any input gives a configuration or a list of problems, never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimalStandalone))
	f.Add(DemoYAML)
	f.Add([]byte("server: {read_timeout: 10}\nroutes: [{path_prefix: x}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, nil)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			if p, ok := err.(Problems); !ok || len(p) == 0 {
				t.Fatalf("error %T %v; want Problems", err, err)
			}
		}
	})
}
