package objectstore

import "testing"

func TestOwnedIDs(t *testing.T) {
	tag := NewOwnerTag()
	if !ValidOwnerTag(tag) {
		t.Fatalf("NewOwnerTag() = %q: not a valid tag", tag)
	}
	id := NewOwnedID(tag)
	if id.Owner() != tag || len(id) != OwnerTagLen+1+32 {
		t.Fatalf("NewOwnedID(%q) = %q, owner %q", tag, id, id.Owner())
	}
	for _, id := range []ID{NewID(), NewOwnedID(""), "", "x", ID(tag[:15] + ".ab"), ID(tag + "."), "0123456789ABCDEF.ab",
		"g123456789abcdef.ab", ID(tag + "x.ab")} {
		if id.Owner() != "" {
			t.Errorf("%q names owner %q, want none", id, id.Owner())
		}
	}
	if got := ID("0123456789abcdef.anything.at.all").Owner(); got != "0123456789abcdef" {
		t.Errorf("owner %q", got)
	}
}
