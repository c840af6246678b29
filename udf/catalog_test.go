// Tests for the catalog and for what every built-in publishes.
package udf

import (
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestBuiltinCatalog(t *testing.T) {
	c := NewBuiltinCatalog()
	want := []string{"builtin_echo", "builtin_healthy", "geohash_encode", "haversine_km", "identity", "jaro_winkler", "levenshtein", "sha256_hex"}
	list := c.List()
	if len(list) != len(want) {
		t.Fatalf("List has %d functions, want %d", len(list), len(want))
	}
	for i, f := range list {
		if f.Name() != want[i] {
			t.Errorf("List()[%d] = %s, want %s", i, f.Name(), want[i])
		}
		got, err := c.Lookup(want[i])
		if err != nil || got.Name() != want[i] {
			t.Errorf("Lookup(%s) = %v, %v", want[i], got, err)
		}
	}

	if _, err := c.Lookup("no_such_function"); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("Lookup(unknown): got %v, want ErrUnknownFunction", err)
	}
	if err := c.Register(levenshtein{}); !errors.Is(err, ErrDuplicate) {
		t.Errorf("Register(duplicate): got %v, want ErrDuplicate", err)
	}
	if n := len(c.List()); n != len(want) {
		t.Errorf("after a refused Register, List has %d functions", n)
	}
}

func TestBuiltinCatalogsAreIndependent(t *testing.T) {
	a, b := NewBuiltinCatalog(), NewBuiltinCatalog()
	if err := a.Register(renamed{Func: identity{}, name: "extra"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lookup("extra"); !errors.Is(err, ErrUnknownFunction) {
		t.Errorf("a function registered in one catalog shows in another: %v", err)
	}
}

// renamed is a Func under another name.
type renamed struct {
	Func
	name string
}

func (r renamed) Name() string { return r.name }

// TestSignatures checks that every built-in publishes named, nullable
// fields, a result named after itself and a Doc, and that Bind accepts its
// own canonical argument types and returns its canonical result type.
func TestSignatures(t *testing.T) {
	for _, f := range Builtins() {
		t.Run(f.Name(), func(t *testing.T) {
			sig := f.Signature()
			if sig.Doc == "" {
				t.Error("empty Doc")
			}
			for i, a := range sig.Args {
				if a.Name == "" || !a.Nullable || a.Type == nil {
					t.Errorf("argument %d: %v: want a name, a type and nullable", i, a)
				}
			}
			if sig.Result.Name != f.Name() || !sig.Result.Nullable {
				t.Errorf("result field %v: want named %s and nullable", sig.Result, f.Name())
			}
			rt, err := f.Bind(argTypes(f))
			if err != nil {
				t.Fatalf("Bind(canonical args): %v", err)
			}
			if !arrow.TypeEqual(rt, sig.Result.Type) {
				t.Errorf("Bind(canonical args) = %s, Signature result %s", rt, sig.Result.Type)
			}
		})
	}
}
