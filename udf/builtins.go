// The list of built-in native functions: one line per function.
package udf

// Builtins returns a fresh instance of every built-in native function.
func Builtins() []Func {
	return []Func{
		identity{},
		haversineKm{},
		sha256Hex{},
		levenshtein{},
		jaroWinkler{},
		geohashEncode{},
		builtinHealthy{},
		builtinEcho{},
	}
}
