// Package reference computes the answers of Quiver's built-in functions
// one value at a time, written from their definitions and independently of
// the kernels in package udf: textbook formulas without the kernels'
// batching, scratch buffers or shortcuts. It is what a check of a kernel's
// answers compares against: udf's own tests, and quiver loadtest --verify,
// which checks every answer a node returns.
//
// Every function is pure and safe for concurrent use. Nulls are the
// caller's business: these functions see values only.
package reference
