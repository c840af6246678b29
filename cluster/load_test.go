// Tests of the load record's encoding.
package cluster

import (
	"fmt"
	"reflect"
	"testing"
)

// TestLoadFitsTheMetadataBound: however many warm functions, the record
// stays within 512 bytes, keeping the first ones and everything else.
func TestLoadFitsTheMetadataBound(t *testing.T) {
	l := Load{Flight: "[2001:db8:1234:5678:9abc:def0:1234:5678]:65535", Version: "v1.22.333-rc4+abcdef0",
		WorkersBusy: 1 << 20, Workers: 1 << 20, Executors: 1 << 10, Queued: 1 << 30,
		StoreBytes: 1 << 62, StoreLimit: 1 << 62, SpilledIn: 1 << 62, SpilledOut: 1 << 62}
	for i := range 500 {
		l.Warm = append(l.Warm, WarmHash(fmt.Sprint("f", i)))
	}
	b, err := encodeLoad(l, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxMetaBytes {
		t.Fatalf("encoded load is %d bytes", len(b))
	}
	got, _ := decodeLoad(b)
	if len(got.Warm) < 10 || !reflect.DeepEqual(got.Warm, l.Warm[:len(got.Warm)]) {
		t.Fatalf("warm kept: %v", got.Warm)
	}
	got.Warm, l.Warm = nil, nil
	if !reflect.DeepEqual(got, l) {
		t.Fatalf("decoded %+v, want %+v", got, l)
	}
	t.Logf("%d bytes with %d warm functions", len(b), len(got.Warm))
}

// TestLoadSmallStaysWhole: a small record round-trips as it is.
func TestLoadSmallStaysWhole(t *testing.T) {
	l := Load{Flight: "10.0.0.1:8815", Workers: 4, Warm: []string{WarmHash("a"), WarmHash("b")}}
	b, err := encodeLoad(l, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, leaving := decodeLoad(b); !reflect.DeepEqual(got, l) || leaving {
		t.Fatalf("decoded %+v, want %+v", got, l)
	}
	if h := WarmHash("a"); len(h) != 8 {
		t.Fatalf("WarmHash: %q", h)
	}
	if b, _ := encodeLoad(Load{}, true); string(b) != `{"x":true}` {
		t.Fatalf("a leaving node's empty load: %s", b)
	}
	if got, _ := decodeLoad([]byte("not json")); !reflect.DeepEqual(got, Load{}) {
		t.Fatalf("bad metadata decoded as %+v", got)
	}
}

// TestLoadTooLarge: a record that cannot fit even without warm functions
// is an error, not a truncated record.
func TestLoadTooLarge(t *testing.T) {
	if _, err := encodeLoad(Load{Version: string(make([]byte, 600))}, false); err == nil {
		t.Fatal("no error")
	}
}
