// The function catalog: names to functions, safe for concurrent use.
package udf

import (
	"fmt"
	"sort"
	"sync"
)

// Catalog maps function names to functions. The zero value is not usable;
// call NewCatalog or NewBuiltinCatalog.
type Catalog struct {
	mu    sync.RWMutex
	funcs map[string]Func
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog {
	return &Catalog{funcs: make(map[string]Func)}
}

// NewBuiltinCatalog returns a catalog holding every built-in native function.
func NewBuiltinCatalog() *Catalog {
	c := NewCatalog()
	for _, f := range Builtins() {
		if err := c.Register(f); err != nil {
			panic(err) // two built-ins with one name is a programming error
		}
	}
	return c
}

// Register adds f. It fails with ErrDuplicate when the name is taken.
func (c *Catalog) Register(f Func) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.funcs[f.Name()]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicate, f.Name())
	}
	c.funcs[f.Name()] = f
	return nil
}

// Lookup returns the function called name, or an error wrapping
// ErrUnknownFunction.
func (c *Catalog) Lookup(name string) (Func, error) {
	c.mu.RLock()
	f, ok := c.funcs[name]
	c.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownFunction, name)
	}
	return f, nil
}

// List returns every function, sorted by name.
func (c *Catalog) List() []Func {
	c.mu.RLock()
	out := make([]Func, 0, len(c.funcs))
	for _, f := range c.funcs {
		out = append(out, f)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}
