// Owned ids: an id that names the node that stores the object, so that
// another node knows whom to pull it from.
package objectstore

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// OwnerTagLen is the length of an owner tag: 16 lower-case hex digits.
const OwnerTagLen = 16

// NewOwnerTag returns a random owner tag. A node draws one each time it
// starts, so that the ids of a node that restarted never name the new
// process: its old objects are lost, never confused with new ones.
func NewOwnerTag() string {
	var b [OwnerTagLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics on a broken system)
	return hex.EncodeToString(b[:])
}

// ValidOwnerTag reports whether tag is an owner tag.
func ValidOwnerTag(tag string) bool {
	if len(tag) != OwnerTagLen {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if c := tag[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewOwnedID returns a random id that names owner: "OWNER.HEX32". With an
// empty owner it is NewID().
func NewOwnedID(owner string) ID {
	if owner == "" {
		return NewID()
	}
	return ID(owner + "." + string(NewID()))
}

// Owner is the owner tag id names ("OWNER.REST", OWNER a valid tag and
// REST not empty), or "" for an id that names none (the 32 hex digits of
// NewID, an id a caller chose): such an object is only ever on the node
// that stored it.
func (id ID) Owner() string {
	tag, rest, ok := strings.Cut(string(id), ".")
	if !ok || rest == "" || !ValidOwnerTag(tag) {
		return ""
	}
	return tag
}

// NewID returns a new random id that names this store's owner
// (Config.Owner), if it has one.
func (s *Store) NewID() ID { return NewOwnedID(s.cfg.Owner) }

// Owner is Config.Owner: the owner tag of the ids this store makes.
func (s *Store) Owner() string { return s.cfg.Owner }
