// What defines a registered Python function, so that a peer can run it:
// its content hash and the parts its registration is rebuilt from.
package udf

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// Hash is the function's content hash: the SHA-256, in hex, of its blob,
// its result type, its declared arguments, whether it is a table
// function and its concurrency; its name is not part of it. Two nodes holding functions of the
// same hash run the same code the same way. It is computed once, at its
// first use: call SetArgs before.
func (f *PyFunc) Hash() string {
	f.hashOnce.Do(func() {
		h := sha256.New()
		field(h, []byte("quiver-pyfunc-v1"))
		field(h, f.blob)
		field(h, []byte(f.ret.String()))
		if f.args == nil {
			field(h, []byte("any"))
		}
		for _, a := range f.args {
			field(h, []byte(a.Name))
			field(h, []byte(a.Type.String()))
		}
		if f.table {
			field(h, []byte("table"))
		}
		if f.conc > 1 {
			field(h, []byte("concurrency "+strconv.Itoa(f.conc)))
		}
		f.hash = hex.EncodeToString(h.Sum(nil))
	})
	return f.hash
}

// field writes b to h after its length, so that fields never run together.
func field(h hash.Hash, b []byte) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// Blob is the function's pickled blob, as registered. Do not modify it.
func (f *PyFunc) Blob() []byte { return f.blob }

// Returns is the function's result type (a table function's value type).
func (f *PyFunc) Returns() arrow.DataType { return f.ret }

// Args are the declared arguments; nil when not declared.
func (f *PyFunc) Args() []arrow.Field { return f.args }
