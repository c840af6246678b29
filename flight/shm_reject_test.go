// Tests of what object_adopt refuses, by gRPC code: bad bodies and names,
// files that are not valid streams, files too large for the store or for
// one message. What the store refuses, file by file, is tested beside it
// (objectstore/adopt_test.go); the check of a file's bytes in
// internal/ipccheck.
package flight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/shmtest"
)

func TestShmAdoptRejects(t *testing.T) {
	ctx := testCtx(t)
	n := startShmNode(t, 256<<10, Config{MaxMessageBytes: 64 << 10})
	c := client(t, n.unix)
	refused := func(name string, want codes.Code, removed bool) {
		t.Helper()
		_, err := adopt(ctx, c, name)
		if status.Code(err) != want {
			t.Fatalf("adopt %q: %v, want %v", name, err, want)
		}
		if removed && shmtest.Exists(filepath.Join(n.dir, name)) {
			t.Fatalf("adopt %q: the refused file is still there", name)
		}
		if _, err := doAction(ctx, c, ActionHealth, nil); err != nil {
			t.Fatalf("the node after adopt %q: %v", name, err)
		}
	}
	rec := shmtest.Batch(2, 100)
	defer rec.Release()
	good := shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{rec})
	shmtest.WriteFile(t, filepath.Join(n.dir, "truncated"), good[:len(good)/2])
	refused("truncated", codes.InvalidArgument, true)
	shmtest.WriteFile(t, filepath.Join(n.dir, "empty"), nil)
	refused("empty", codes.InvalidArgument, true)
	if err := os.Mkdir(filepath.Join(n.dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	refused("sub", codes.InvalidArgument, false)
	for _, name := range []string{"", ".", "..", "sub/inner", "../outside", "a\x00b", strings.Repeat("x", 256), "missing"} {
		refused(name, codes.InvalidArgument, false)
	}
	for _, body := range []string{"", "{", `{"file": 3}`, `["x"]`} {
		if _, err := doAction(ctx, c, ActionObjectAdopt, []byte(body)); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("adopt with body %q: %v, want InvalidArgument", body, err)
		}
	}
	// Larger than the store: ResourceExhausted. One message larger than
	// the node sends: InvalidArgument, saying so.
	big := shmtest.Batch(1, 40_000)
	defer big.Release()
	shmtest.WriteFile(t, filepath.Join(n.dir, "big"), shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{big}))
	refused("big", codes.ResourceExhausted, true)
	wide := shmtest.Batch(3, 2_000) // about 80 KiB in one message
	defer wide.Release()
	shmtest.WriteFile(t, filepath.Join(n.dir, "wide"), shmtest.Stream(t, shmtest.Schema, []arrow.RecordBatch{wide}))
	if _, err := adopt(ctx, c, "wide"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "smaller batches") {
		t.Fatalf("a batch larger than the node's messages: %v, want InvalidArgument", err)
	}
	os.Remove(filepath.Join(n.dir, "sub"))
	if st := n.store.Stats(); st.Objects != 0 {
		t.Fatalf("refused files became objects: %+v", st)
	}
	// A good file still goes in.
	shmtest.WriteFile(t, filepath.Join(n.dir, "good"), good)
	pr, err := adopt(ctx, c, "good")
	if err != nil || pr.Rows != 100 {
		t.Fatalf("adopt of a good file after the bad ones: %+v, %v", pr, err)
	}
	if err := releaseObject(ctx, c, pr.ID); err != nil {
		t.Fatal(err)
	}
}
