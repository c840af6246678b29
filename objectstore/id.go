// Object ids: random, or given by the caller (content addressing).
package objectstore

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// ID names an object. NewID makes random ones; a caller that addresses
// objects by content gives its own (a hash, say) to PutWithID.
type ID string

// MaxIDBytes bounds the length of an id.
const MaxIDBytes = 256

// NewID returns a random id: 16 bytes, 32 lower-case hex digits.
func NewID() ID {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken system)
	return ID(hex.EncodeToString(b[:]))
}

// check rejects ids the store cannot take.
func (id ID) check() error {
	if id == "" || len(id) > MaxIDBytes {
		return fmt.Errorf("%w: id of %d bytes: want 1 to %d", ErrInvalidObject, len(id), MaxIDBytes)
	}
	return nil
}
