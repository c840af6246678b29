// Tests of the recorder: what it writes, what it drops, its size bound,
// continuing a recording, and Load.
package record

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/internal/arrowio"
)

var testMeta = arrow.NewMetadata([]string{"k"}, []string{"v"})

var testSchema = arrow.NewSchema([]arrow.Field{
	{Name: "x", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
}, &testMeta)

// newMem is a checked allocator asserted empty when the test ends.
func newMem(t *testing.T) *memory.CheckedAllocator {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	return mem
}

// batch is n rows numbered from start, every 5th null, from mem.
func batch(mem memory.Allocator, start, n int) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, testSchema)
	defer b.Release()
	xs, ss := b.Field(0).(*array.Int64Builder), b.Field(1).(*array.StringBuilder)
	for i := 0; i < n; i++ {
		if i%5 == 4 {
			xs.AppendNull()
			ss.AppendNull()
			continue
		}
		xs.Append(int64(start + i))
		ss.Append(fmt.Sprintf("row-%d", start+i))
	}
	return b.NewRecordBatch()
}

// serialize encodes rec alone as an IPC stream: what "byte-identical"
// compares.
func serialize(t *testing.T, rec arrow.RecordBatch) []byte {
	t.Helper()
	b, err := arrowio.StreamBytes(rec, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRecorder(t *testing.T, cfg Config) *Recorder {
	t.Helper()
	r, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// diskBytes sums the sizes of the files under dir.
func diskBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readLines(t *testing.T, path string) []Line {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Line
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ln Line
		if err := json.Unmarshal(sc.Bytes(), &ln); err != nil {
			t.Fatalf("index line %q: %v", sc.Text(), err)
		}
		out = append(out, ln)
	}
	return out
}

func TestRecordAndLoad(t *testing.T) {
	mem := newMem(t)
	dir := t.TempDir()
	r := newRecorder(t, Config{Dir: dir})
	// Two calls of one function interleaved, one of another, one call with
	// no batch at all.
	in := map[string]map[string]bool{} // function: serialized batches offered

	a, b := r.Begin("f", testSchema), r.Begin("f", testSchema)
	g, empty := r.Begin("g/../x", testSchema), r.Begin("f", testSchema)
	for i := 0; i < 3; i++ {
		for _, c := range []*Call{a, b, g} {
			rec := batch(mem, 100*i+int(c.ID()), 10+i)
			c.Offer(rec)
			if in[c.function] == nil {
				in[c.function] = map[string]bool{}
			}
			in[c.function][string(serialize(t, rec))] = true
			rec.Release() // the caller's reference: the recorder holds its own
		}
	}
	for _, c := range []*Call{a, b, g, empty} {
		c.Close()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Calls != 4 || st.Batches != 9 || st.Dropped != 0 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
	if got := diskBytes(t, dir); got != st.DiskBytes {
		t.Fatalf("%d bytes on disk, the recorder accounted %d", got, st.DiskBytes)
	}
	if _, err := os.Stat(filepath.Join(dir, "g%2F..%2Fx", IndexName)); err != nil {
		t.Fatalf("the folder of g/../x: %v", err)
	}
	lines := readLines(t, filepath.Join(dir, "f", IndexName))
	if len(lines) != 6 {
		t.Fatalf("%d index lines for f, want 6", len(lines))
	}
	seqs := map[int64][]int64{}
	for _, ln := range lines {
		seqs[ln.Call] = append(seqs[ln.Call], ln.Seq)
		if ln.File != streamName(ln.Call) || ln.Bytes <= 0 || ln.Rows < 10 || ln.TNs <= 0 {
			t.Fatalf("index line %+v", ln)
		}
	}
	if fmt.Sprint(seqs) != fmt.Sprint(map[int64][]int64{a.ID(): {0, 1, 2}, b.ID(): {0, 1, 2}}) {
		t.Fatalf("seqs by call %v", seqs)
	}
	for fn, want := range map[string]int{"f": 6, "g/../x": 3} {
		rec, err := Load(dir, fn, mem)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Batches) != want || rec.Missing != 0 {
			t.Fatalf("%s: %d batches (%d missing), want %d", fn, len(rec.Batches), rec.Missing, want)
		}
		orig := in[fn]
		for i, bt := range rec.Batches {
			if i > 0 && bt.T < rec.Batches[i-1].T {
				t.Fatalf("batches out of arrival order at %d", i)
			}
			if !bt.Rec.Schema().Equal(testSchema) || !orig[string(serialize(t, bt.Rec))] {
				t.Fatalf("%s batch %d is not one that was offered", fn, i)
			}
		}
		rec.Release()
	}
	// The function's folder works alone too.
	rec, err := Load(filepath.Join(dir, "f"), "", mem)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Batches) != 6 {
		t.Fatalf("loading the folder: %d batches", len(rec.Batches))
	}
	rec.Release()
	if _, err := Load(dir, "nope", mem); err == nil {
		t.Fatal("loading an unrecorded function succeeded")
	}
}

// TestDropsWhenFull holds the writer so the queue fills: further batches
// are dropped and counted, never blocked on, and none leaks.
func TestDropsWhenFull(t *testing.T) {
	mem := newMem(t)
	dir := t.TempDir()
	r, err := New(Config{Dir: dir, QueueBatches: 2, LogEvery: 1}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	r.beforeWrite = func() {
		if first {
			first = false
			close(entered)
			<-release
		}
	}
	c := r.Begin("f", testSchema)
	offer := func(i int) {
		rec := batch(mem, i, 100)
		c.Offer(rec)
		rec.Release()
	}
	offer(0)
	<-entered // the writer holds batch 0; the queue is empty
	for i := 1; i < 6; i++ {
		offer(i) // 1 and 2 fit, 3..5 are dropped
	}
	close(release)
	c.Close()
	late := batch(mem, 0, 1)
	c.Offer(late) // after Close: ignored
	late.Release()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Batches != 3 || st.Dropped != 3 {
		t.Fatalf("stats %+v, want 3 written and 3 dropped", st)
	}
	var seqs []int64
	for _, ln := range readLines(t, filepath.Join(dir, "f", IndexName)) {
		seqs = append(seqs, ln.Seq)
	}
	if fmt.Sprint(seqs) != "[0 1 2]" {
		t.Fatalf("seqs %v, want [0 1 2]", seqs)
	}
}

// TestBounded records far more than the bound: the oldest calls go, whole,
// and what is left is under the bound and loads.
func TestBounded(t *testing.T) {
	defer func(v int64) { compactMin = v }(compactMin)
	compactMin = 1
	mem := newMem(t)
	dir := t.TempDir()
	const max = 64 << 10
	r := newRecorder(t, Config{Dir: dir, MaxBytes: max})
	var ids []int64
	for i := 0; i < 40; i++ {
		c := r.Begin("f", testSchema)
		ids = append(ids, c.ID())
		for j := 0; j < 2; j++ {
			rec := batch(mem, i*1000+j, 200)
			c.Offer(rec)
			rec.Release()
		}
		c.Close()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if got := diskBytes(t, dir); got > max || got != st.DiskBytes {
		t.Fatalf("%d bytes on disk (accounted %d), bound %d", got, st.DiskBytes, max)
	}
	if st.Evicted == 0 {
		t.Fatal("nothing was evicted")
	}
	for i, id := range ids {
		_, err := os.Stat(filepath.Join(dir, "f", streamName(id)))
		if kept := err == nil; kept != (i >= int(st.Evicted)) {
			t.Fatalf("call %d (%d of %d): kept %v with %d evicted; the oldest must go first", id, i, len(ids), kept, st.Evicted)
		}
	}
	rec, err := Load(dir, "f", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if want := 2 * (len(ids) - int(st.Evicted)); len(rec.Batches) != want {
		t.Fatalf("%d batches loaded, want %d", len(rec.Batches), want)
	}
	// The index was rewritten: at most the lines of deleted calls since the
	// last rewrite remain.
	if lines := readLines(t, filepath.Join(dir, "f", IndexName)); len(lines) > len(rec.Batches)+rec.Missing || len(lines) > 2*len(rec.Batches) {
		t.Fatalf("%d index lines for %d live batches", len(lines), len(rec.Batches))
	}
}

// TestBoundedOpenCall: calls in progress outgrow the bound. They are not
// deleted: their later batches are left out, and what was recorded stays
// (the beginning of each). Once a call has ended, the next call's batches
// make room by deleting it.
func TestBoundedOpenCall(t *testing.T) {
	mem := newMem(t)
	dir := t.TempDir()
	const max = 32 << 10
	r := newRecorder(t, Config{Dir: dir, MaxBytes: max, LogEvery: 5})
	a, b := r.Begin("f", testSchema), r.Begin("f", testSchema)
	offer := func(c *Call, n int) {
		for i := 0; i < n; i++ {
			rec := batch(mem, i, 200)
			c.Offer(rec)
			rec.Release()
		}
	}
	for i := 0; i < 10; i++ {
		offer(a, 1)
		offer(b, 1)
	}
	a.Close()
	b.Close()
	c := r.Begin("f", testSchema)
	offer(c, 3)
	c.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.OverBound == 0 || st.Evicted == 0 || st.Batches+st.OverBound != 23 || diskBytes(t, dir) > max {
		t.Fatalf("stats %+v, %d bytes on disk", st, diskBytes(t, dir))
	}
	rec, err := Load(dir, "f", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	calls := map[int64][]int64{}
	for _, bt := range rec.Batches {
		calls[bt.Call] = append(calls[bt.Call], bt.Seq)
	}
	// a, the oldest, made room for c; b kept its first batches; c is whole.
	if _, ok := calls[a.ID()]; ok || len(calls[b.ID()]) == 0 || calls[b.ID()][0] != 0 || len(calls[c.ID()]) != 3 {
		t.Fatalf("seqs recorded by call: %v (a=%d b=%d c=%d)", calls, a.ID(), b.ID(), c.ID())
	}
}

// TestContinue: a second recorder on the same directory continues the ids
// and the clock, and Load sees both sessions in order.
func TestContinue(t *testing.T) {
	mem := newMem(t)
	dir := t.TempDir()
	var ids []int64
	for session := 0; session < 2; session++ {
		r := newRecorder(t, Config{Dir: dir})
		for i := 0; i < 2; i++ {
			c := r.Begin("f", testSchema)
			ids = append(ids, c.ID())
			rec := batch(mem, session*10+i, 7)
			c.Offer(rec)
			rec.Release()
			c.Close()
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !sort.SliceIsSorted(ids, func(i, j int) bool { return ids[i] < ids[j] }) || ids[0] == ids[2] {
		t.Fatalf("call ids %v: not continued", ids)
	}
	rec, err := Load(dir, "f", mem)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	var got []int64
	for _, b := range rec.Batches {
		got = append(got, b.Call)
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("calls in arrival order %v, want %v", got, ids)
	}
}

func TestNilRecorder(t *testing.T) {
	var r *Recorder
	c := r.Begin("f", testSchema)
	rec := batch(memory.DefaultAllocator, 0, 1)
	defer rec.Release()
	c.Offer(rec)
	c.Close()
	if err := r.Close(); err != nil || r.QueueBytes() != 0 {
		t.Fatal("a nil recorder did something")
	}
}

func TestFolderName(t *testing.T) {
	for in, want := range map[string]string{
		"haversine_km": "haversine_km",
		"a.b-c":        "a.b-c",
		"..":           "%2E.",
		".hidden":      "%2Ehidden",
		"a/b":          "a%2Fb",
		"naïve":        "na%C3%AFve",
		"":             "%00",
	} {
		if got := FolderName(in); got != want {
			t.Errorf("FolderName(%q) = %q, want %q", in, got, want)
		}
	}
}
