// Package udf says what runs and how: the function catalog, signatures and
// type checks, and the native Go kernels.
//
// A Func is a vectorized function over Arrow arrays. Bind checks the argument
// types of a call once (naming the argument position, the expected and the
// actual type) and returns the output type; Eval then runs over argument
// arrays of equal length and returns one array of the same length. Every
// built-in is null in, null out.
//
// A Catalog maps names to functions. It is safe for concurrent use; there is
// no global catalog: NewBuiltinCatalog returns a fresh one holding the
// built-ins, and callers own it.
//
// Adding a native function is one file that implements Func and one line in
// builtins.go.
package udf
