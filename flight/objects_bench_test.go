// Benchmarks of the object paths: DoPut and DoGet, object_adopt, and a
// session's put and get, each with the release that ends it.
package flight

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/quiver-udf/quiver/internal/shmtest"
)

// BenchmarkObjectPutGet: DoPut of 8192 int64 rows, DoGet of them, release.
func BenchmarkObjectPutGet(b *testing.B) {
	n, _ := startObjectNode(b, 256<<20)
	c := client(b, n.unix)
	ctx := testCtx(b)
	in := int64Batches(8192)
	defer releaseAll(in)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pr, err := putObject(ctx, c, objectsDesc, int64Schema, in)
		if err != nil {
			b.Fatal(err)
		}
		getAndRelease(b, ctx, c, pr.ID)
	}
}

// getAndRelease reads the object id with DoGet, then releases it.
func getAndRelease(b *testing.B, ctx context.Context, c flight.Client, id string) {
	res, err := getObject(ctx, c, id)
	if err != nil {
		b.Fatal(err)
	}
	res.release()
	if err := releaseObject(ctx, c, id); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkObjectAdopt: object_adopt of a file of 8192 rows, object_locate,
// DoGet, release. Writing the file is not timed.
func BenchmarkObjectAdopt(b *testing.B) {
	n := startShmNode(b, 256<<20, Config{})
	c := client(b, n.unix)
	ctx := testCtx(b)
	rec := shmtest.Batch(1, 8192)
	data := shmtest.Stream(b, shmtest.Schema, []arrow.RecordBatch{rec})
	rec.Release()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("f%d", i)
		shmtest.WriteFile(b, filepath.Join(n.dir, name), data)
		b.StartTimer()
		pr, err := adopt(ctx, c, name)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := locate(ctx, c, pr.ID); err != nil {
			b.Fatal(err)
		}
		getAndRelease(b, ctx, c, pr.ID)
	}
}

// BenchmarkSessionPutGet: on one session, a put of a 1 KiB blob in two
// parts, a get of it and its release.
func BenchmarkSessionPutGet(b *testing.B) {
	n, _ := startObjectNode(b, 256<<20)
	ctx := testCtx(b)
	s := openSession(b, ctx, client(b, n.unix), sessionSchema)
	part := make([]byte, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("%032x", i)
		for _, req := range []map[string]any{
			{"op": "put", "req": 3 * i, "id": id},
			{"op": "get", "req": 3*i + 1, "id": id},
			{"op": "release", "req": 3*i + 2, "id": id},
		} {
			var rows [][]byte
			if req["op"] == "put" {
				rows = [][]byte{part, part}
			}
			if err := s.send(req, rows...); err != nil {
				b.Fatal(err)
			}
			a, err := s.next()
			if err != nil || a.code() != "" {
				b.Fatalf("%v: %v %v", req, a.meta, err)
			}
		}
	}
	b.StopTimer()
	if err := s.end(); err != nil {
		b.Fatal(err)
	}
}
