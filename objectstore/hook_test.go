// Release hooks (Object.Free): called exactly once when the store lets go
// of an object's memory, never while it is pinned or being written out.
package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// hooked is an object of stream bytes whose Free counts its calls, checks
// it is not pinned, and poisons the bytes, as an unmapped file would be
// gone: a read after Free sees garbage, and -race sees the write.
type hooked struct {
	t     testing.TB
	want  []byte // a copy of the bytes put
	data  []byte
	calls atomic.Int32
	pins  atomic.Int32 // pins the test holds
}

func newHooked(t testing.TB, seed int64, size int) *hooked {
	b := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(b)
	return &hooked{t: t, want: bytes.Clone(b), data: b}
}

func (o *hooked) object() Object {
	return Object{Stream: o.data, Free: o.free}
}

func (o *hooked) free() {
	if n := o.calls.Add(1); n > 1 {
		o.t.Errorf("release hook called %d times", n)
	}
	if p := o.pins.Load(); p > 0 {
		o.t.Errorf("release hook called while the object is pinned (%d pins)", p)
	}
	for i := range o.data {
		o.data[i] = 0xEE
	}
}

func (o *hooked) called(t testing.TB, what string, want int32) {
	t.Helper()
	if got := o.calls.Load(); got != want {
		t.Fatalf("%s: release hook called %d times, want %d", what, got, want)
	}
}

// eventually waits until the hook has run want times: a hook whose object
// the spiller was writing when it was freed runs at the end of the write.
func (o *hooked) eventually(t testing.TB, what string, want int32) {
	t.Helper()
	for deadline := time.Now().Add(hang); o.calls.Load() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	o.called(t, what, want)
}

// pinCheck pins h, checks it holds o's bytes, and unpins it.
func (o *hooked) pinCheck(t testing.TB, ctx context.Context, h *Handle) {
	t.Helper()
	got, err := h.Pin(ctx)
	if err != nil {
		t.Fatalf("pin %s: %v", h.ID(), err)
	}
	o.pins.Add(1)
	defer func() {
		o.pins.Add(-1)
		h.Unpin()
	}()
	if !got.IsStream() || !bytes.Equal(got.Stream, o.want) {
		t.Fatalf("%s: came back different (stream %v, %d bytes)", h.ID(), got.IsStream(), len(got.Stream))
	}
	if got.Free != nil {
		t.Fatalf("%s: Pin returned an object with Free set", h.ID())
	}
}

func TestHookOnFree(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	o := newHooked(t, 1, 1000)
	h, err := s.Put(ctx, o.object())
	if err != nil {
		t.Fatal(err)
	}
	if h.Size() != 1000 {
		t.Fatalf("size %d, want the stream's 1000 bytes", h.Size())
	}
	o.pinCheck(t, ctx, h)
	h2, err := s.Acquire(h.ID())
	if err != nil {
		t.Fatal(err)
	}
	h.Release()
	o.called(t, "one of two references released", 0)
	h2.Release()
	o.called(t, "freed", 1)
	if st := s.Stats(); st.Objects != 0 || st.MemoryBytes != 0 {
		t.Fatalf("stats after the free: %+v", st)
	}
}

// TestHookOnSpill: a spilled object's hook runs once; it comes back from
// disk as Go memory, whose free calls nothing more.
func TestHookOnSpill(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20}) // one fits under the high-water mark
	a, b := newHooked(t, 1, 600<<10), newHooked(t, 2, 600<<10)
	ha, err := s.Put(ctx, a.object())
	if err != nil {
		t.Fatal(err)
	}
	a.called(t, "a stored", 0)
	hb, err := s.Put(ctx, b.object()) // waits while a is spilled
	if err != nil {
		t.Fatal(err)
	}
	a.eventually(t, "a spilled", 1) // the spiller calls it once it let go of the lock
	if st := s.Stats(); st.SpilledObjects != 1 {
		t.Fatalf("a not spilled: %+v", st)
	}
	a.pinCheck(t, ctx, ha) // read back, b spilled to make room
	b.eventually(t, "b spilled", 1)
	a.pinCheck(t, ctx, ha)
	ha.Release()
	hb.Release()
	a.called(t, "a freed after its restore", 1)
	b.called(t, "b freed on disk", 1)
}

// TestHookNotWhilePinned: a pinned object keeps its memory through
// pressure and Close; its hook runs at the last Unpin after Close.
func TestHookNotWhilePinned(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20, HighWater: 0.1})
	a := newHooked(t, 1, 600<<10)
	h, err := s.Put(ctx, a.object())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	a.pins.Add(1)
	if _, err := h.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	a.pins.Add(1)
	b := newHooked(t, 2, 600<<10)
	if _, err := s.Put(ctx, b.object()); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("a put beside a pinned object that leaves no room: %v", err)
	}
	b.called(t, "a refused put", 1)
	time.Sleep(10 * time.Millisecond) // the spiller would have taken a by now, were it not pinned
	a.called(t, "a pinned past the high-water mark", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	a.called(t, "closed while pinned", 0)
	a.pins.Add(-1)
	h.Unpin()
	a.called(t, "one of two pins dropped after Close", 0)
	a.pins.Add(-1)
	h.Unpin()
	a.called(t, "last unpin after Close", 1)
	h.Unpin() // inert, like every call after Close
	h.Release()
	a.called(t, "calls after the last unpin", 1)
}

func TestHookOnClose(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	var objs []*hooked
	for i := 0; i < 4; i++ {
		o := newHooked(t, int64(i), 1000)
		if _, err := s.Put(ctx, o.object()); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, o := range objs {
		o.called(t, fmt.Sprintf("object %d at Close", i), 1)
	}
	o := newHooked(t, 9, 10)
	if _, err := s.Put(ctx, o.object()); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after Close: %v", err)
	}
	o.called(t, "a put after Close", 1)
}

// TestHookWhenNothingIsStored: a put that fails, or finds its id stored
// already, hands the hook back at once.
func TestHookWhenNothingIsStored(t *testing.T) {
	ctx := testCtx(t)
	s, _ := openStore(t, Config{MemoryBytes: 1 << 20})
	big := newHooked(t, 1, 1<<20+1)
	if _, err := s.Put(ctx, big.object()); !errors.Is(err, ErrOverCapacity) {
		t.Fatalf("an object larger than the store: %v", err)
	}
	big.called(t, "larger than the store", 1)

	bad := newHooked(t, 2, 10)
	obj := bad.object()
	obj.Schema = testSchema
	if _, err := s.Put(ctx, obj); !errors.Is(err, ErrInvalidObject) {
		t.Fatalf("stream bytes with a schema: %v", err)
	}
	bad.called(t, "an invalid object", 1)

	first, dup := newHooked(t, 3, 10), newHooked(t, 3, 10)
	h1, err := s.PutWithID(ctx, "same", first.object())
	if err != nil {
		t.Fatal(err)
	}
	h2, err := s.PutWithID(ctx, "same", dup.object())
	if err != nil {
		t.Fatal(err)
	}
	dup.called(t, "a put of an id stored already", 1)
	first.called(t, "the object stored under that id", 0)
	h1.Release()
	h2.Release()
	first.called(t, "freed", 1)

	// A put that waits for room, then gives up.
	pinned := newHooked(t, 4, 600<<10)
	hp, err := s.Put(ctx, pinned.object())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hp.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	pinned.pins.Add(1)
	waiting := newHooked(t, 5, 300<<10)
	other := newHooked(t, 6, 300<<10)
	ho, err := s.Put(ctx, other.object()) // fits: 900 KiB of 1 MiB
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	// It fits once other is spilled; hold other's spill back by pinning it.
	if _, err := ho.Pin(ctx); err != nil {
		t.Fatal(err)
	}
	other.pins.Add(1)
	if _, err := s.Put(wctx, waiting.object()); err == nil {
		t.Fatal("a put that cannot fit while everything is pinned succeeded")
	}
	waiting.called(t, "a put refused or given up", 1)
	other.pins.Add(-1)
	ho.Unpin()
	pinned.pins.Add(-1)
	hp.Unpin()
	ho.Release()
	hp.Release()
	other.eventually(t, "freed", 1)
	pinned.eventually(t, "freed", 1)
}

// TestHookConcurrent runs puts, reads and releases of hooked objects
// against a store that keeps spilling; run it with -race: a hook that ran
// while the spiller still read the bytes is a race on them, and a hook
// that ran under a reader or twice fails the test.
func TestHookConcurrent(t *testing.T) {
	ctx := testCtx(t)
	const bound, workers, perWorker = 2 << 20, 4, 24
	s, _ := openStore(t, Config{MemoryBytes: bound, HighWater: 0.5, SpillFileBytes: 512 << 10})
	var (
		mu  sync.Mutex
		all []*hooked
		hs  []*Handle
	)
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < workers; w++ {
		g.Go(func() error {
			rng := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < perWorker; i++ {
				o := newHooked(t, int64(w*1000+i), 64<<10+rng.Intn(192<<10))
				h, err := s.Put(gctx, o.object())
				mu.Lock()
				all = append(all, o)
				mu.Unlock()
				if errors.Is(err, ErrOverCapacity) {
					continue
				}
				if err != nil {
					return err
				}
				for k := rng.Intn(3); k >= 0; k-- {
					got, err := h.Pin(gctx)
					if errors.Is(err, ErrOverCapacity) {
						continue
					}
					if err != nil {
						return err
					}
					o.pins.Add(1)
					ok := bytes.Equal(got.Stream, o.want)
					o.pins.Add(-1)
					h.Unpin()
					if !ok {
						return fmt.Errorf("object %s came back different", h.ID())
					}
				}
				if rng.Intn(3) == 0 {
					mu.Lock()
					hs = append(hs, h) // left for Close
					mu.Unlock()
				} else {
					h.Release()
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	t.Logf("stats: %+v", st)
	if st.SpillsTotal == 0 {
		t.Fatalf("nothing spilled: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		h.Release() // inert
	}
	var missing []string
	for i, o := range all {
		if o.calls.Load() != 1 {
			missing = append(missing, fmt.Sprintf("object %d: %d calls", i, o.calls.Load()))
		}
	}
	if len(missing) > 0 {
		t.Fatalf("hooks not called exactly once: %s", strings.Join(missing, "; "))
	}
}
