// Scenario tests of the deterministic core: testdata/*.txt drive the core
// the way the store's shell does, and say what each command must print.
package objectstore

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/quiver-udf/quiver/internal/scenario"
)

// A scenario file is a list of commands, each followed by the lines it must
// print, each of those prefixed by "> ". Lines starting with # are comments.
// A command prints its result (if any), then the events it caused, in order:
// admitted ID, refused ID: ERR, restored ID pins=N, spilled ID, kept ID
// (pinned), dropped ID, freed ID, deleted fN.
//
//	store BOUND [high BYTES] [file BYTES]  a new core (high defaults to 80%,
//	                        file, the spill file size, to 64 MiB)
//	put ID SIZE             ok | dup | wait | error: ...
//	pin ID                  ok | wait | error: ...
//	get ID                  pin, then unpin at once (or when restored)
//	unpin ID, retain ID, release ID   (a panic prints "panic: ...")
//	cancel ID               the last waiting put or pin of ID gives up
//	spill                   the spiller's next job: write ID fN@OFF | read ID fN@OFF | idle
//	io [BYTES|fail]         the job in flight completes (a write of BYTES,
//	                        default the object's size) or fails
//	run                     spill and io until idle, printing both
//	objects                 ID SIZE STATE refs=N pins=N [fN@OFF], by id
//	stats                   used, peak, objects, spilled, files
func TestScenarios(t *testing.T) {
	scenario.Run(t, "testdata/*.txt", func(t *testing.T) func(scenario.Step) []string {
		h := &harness{t: t}
		return func(s scenario.Step) []string {
			h.out = nil
			h.line = s.Line
			h.exec(strings.Fields(s.Cmd))
			if h.c != nil {
				if err := h.c.check(); err != nil {
					t.Fatalf("line %d: %s: invariant broken: %v", s.Line, s.Cmd, err)
				}
			}
			return h.out
		}
	})
}

// harness plays the shell's part around a core.
type harness struct {
	t     *testing.T
	line  int
	c     *core
	metas map[ID]*meta     // the latest object of each id, freed ones too
	reqs  map[ID]*request  // the latest request of each id
	gets  map[*request]int // restores started by get: unpin when restored
	out   []string
}

func (h *harness) print(format string, a ...any) { h.out = append(h.out, fmt.Sprintf(format, a...)) }

func (h *harness) num(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		h.t.Fatalf("line %d: %q is not a number", h.line, s)
	}
	return v
}

func (h *harness) obj(id string) *meta {
	m := h.metas[ID(id)]
	if m == nil {
		h.t.Fatalf("line %d: no object %s", h.line, id)
	}
	return m
}

// guard runs f and prints its panic, if any; it reports whether f returned.
func (h *harness) guard(f func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			h.print("panic: %v", r)
		}
	}()
	f()
	return true
}

func (h *harness) exec(f []string) {
	need := func(k int) {
		if len(f) < k+1 {
			h.t.Fatalf("line %d: %s needs %d arguments", h.line, f[0], k)
		}
		if f[0] != "store" && h.c == nil {
			h.t.Fatalf("line %d: %s before store", h.line, f[0])
		}
	}
	switch f[0] {
	case "store":
		need(1)
		bound := h.num(f[1])
		high, file := bound*8/10, int64(DefaultSpillFileBytes)
		for i := 2; i+1 < len(f); i += 2 {
			switch f[i] {
			case "high":
				high = h.num(f[i+1])
			case "file":
				file = h.num(f[i+1])
			default:
				h.t.Fatalf("line %d: unknown store option %q", h.line, f[i])
			}
		}
		h.c = newCore(bound, high, file)
		h.metas, h.reqs, h.gets = make(map[ID]*meta), make(map[ID]*request), make(map[*request]int)
		return
	case "put":
		need(2)
		out, m, r, err := h.c.put(ID(f[1]), h.num(f[2]))
		h.result(out, err)
		if m != nil {
			h.metas[m.id] = m
		}
		if r != nil {
			h.reqs[r.id] = r
		}
	case "pin", "get":
		need(1)
		m := h.obj(f[1])
		var out outcome
		var r *request
		var err error
		if !h.guard(func() { out, r, err = h.c.pin(m) }) {
			break
		}
		h.result(out, err)
		if r != nil {
			h.reqs[m.id] = r
			if f[0] == "get" {
				h.gets[r]++
			}
		}
		if f[0] == "get" && err == nil && out == outDone {
			h.c.unpin(m)
		}
	case "unpin":
		need(1)
		h.guard(func() { h.c.unpin(h.obj(f[1])) })
	case "retain":
		need(1)
		h.guard(func() { h.c.retain(h.obj(f[1])) })
	case "release":
		need(1)
		h.guard(func() { h.c.release(h.obj(f[1])) })
	case "cancel":
		need(1)
		r := h.reqs[ID(f[1])]
		if r == nil {
			h.t.Fatalf("line %d: no request for %s", h.line, f[1])
		}
		if h.gets[r] > 0 {
			h.gets[r]--
		}
		h.c.cancel(r)
	case "spill":
		need(0)
		h.spill()
	case "io":
		need(0)
		h.io(f[1:])
	case "run":
		need(0)
		for i := 0; h.spill(); i++ {
			if i > 10000 {
				h.t.Fatalf("line %d: run does not end", h.line)
			}
			h.io(nil)
		}
	case "objects":
		need(0)
		ids := make([]string, 0, len(h.c.objs))
		for id := range h.c.objs {
			ids = append(ids, string(id))
		}
		sort.Strings(ids)
		for _, id := range ids {
			m := h.c.objs[ID(id)]
			s := fmt.Sprintf("%s %d %s refs=%d pins=%d", id, m.size, m.state, m.refs, m.pins)
			if m.onDisk {
				s += fmt.Sprintf(" f%d@%d", m.seg.file, m.seg.off)
			}
			h.print("%s", s)
		}
		if len(ids) == 0 {
			h.print("none")
		}
	case "stats":
		need(0)
		s := h.c.stats()
		h.print("used=%d peak=%d objects=%d spilled=%d/%d files=%d/%d waiting=%d",
			s.MemoryBytes, s.MemoryPeakBytes, s.Objects, s.SpilledObjects, s.SpilledBytes,
			s.SpillFiles, s.SpillFileBytes, s.Waiting)
	default:
		h.t.Fatalf("line %d: unknown command %q", h.line, f[0])
	}
	h.events()
}

func (h *harness) result(out outcome, err error) {
	switch {
	case err != nil:
		h.print("error: %v", err)
	case out == outDone:
		h.print("ok")
	case out == outDup:
		h.print("dup")
	case out == outWait:
		h.print("wait")
	}
}

// spill prints the next job and reports whether there is one.
func (h *harness) spill() bool {
	var j job
	h.guard(func() { j = h.c.next() })
	h.events()
	switch j.kind {
	case jobWrite:
		h.print("write %s f%d@%d", j.m.id, j.file, j.off)
	case jobRead:
		h.print("read %s f%d@%d", j.m.id, j.file, j.off)
	default:
		h.print("idle")
		return false
	}
	return true
}

func (h *harness) io(args []string) {
	if h.c.busy == nil {
		h.t.Fatalf("line %d: io without a job in flight", h.line)
	}
	j := *h.c.busy
	fail := len(args) > 0 && args[0] == "fail"
	switch {
	case j.kind == jobWrite && fail:
		h.c.writeFailed()
	case j.kind == jobWrite:
		n := j.m.size
		if len(args) > 0 {
			n = h.num(args[0])
		}
		h.c.written(n)
	case fail:
		h.c.readFailed(fmt.Errorf("read failed"))
	default:
		h.c.readDone()
	}
	h.events()
}

// events prints what the core asks of the shell, and does a shell's part:
// unpin what a get restored.
func (h *harness) events() {
	for _, e := range h.c.take() {
		switch e.kind {
		case evAdmit:
			h.metas[e.m.id] = e.m
			if e.r.dup {
				h.print("admitted %s (dup)", e.m.id)
			} else {
				h.print("admitted %s", e.m.id)
			}
		case evRefuse:
			delete(h.gets, e.r)
			h.print("refused %s: %v", e.r.id, e.r.err)
		case evRestore:
			h.print("restored %s pins=%d", e.m.id, e.m.pins)
			for ; h.gets[e.r] > 0; h.gets[e.r]-- {
				h.c.unpin(e.m)
			}
		case evSpill:
			h.print("spilled %s", e.m.id)
		case evKeep:
			h.print("kept %s (pinned)", e.m.id)
		case evDrop:
			h.print("dropped %s", e.m.id)
		case evFree:
			h.print("freed %s", e.m.id)
		case evDelete:
			h.print("deleted f%d", e.file)
		}
	}
}
