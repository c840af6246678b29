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

// ErrBuiltin: built-in native functions cannot be replaced or dropped.
var ErrBuiltin = fmt.Errorf("%w: a built-in function cannot be replaced or dropped", ErrInvalidArgument)

// Put registers a Python function, replacing an earlier Python function of
// the same name. It reports whether it replaced one with a different blob;
// the same blob again changes nothing. Calls in flight keep the function
// they bound.
func (c *Catalog) Put(f *PyFunc) (replaced bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.funcs[f.Name()]; ok {
		py, isPy := old.(*PyFunc)
		if !isPy {
			return false, fmt.Errorf("%w: %q", ErrBuiltin, f.Name())
		}
		if py.ID() == f.ID() {
			return false, nil
		}
		replaced = true
	}
	c.funcs[f.Name()] = f
	return replaced, nil
}

// Drop removes a Python function.
func (c *Catalog) Drop(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.funcs[name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownFunction, name)
	}
	if _, isPy := f.(*PyFunc); !isPy {
		return fmt.Errorf("%w: %q", ErrBuiltin, name)
	}
	delete(c.funcs, name)
	return nil
}
