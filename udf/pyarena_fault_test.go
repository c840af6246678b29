// Arena faults: bad ranges from a worker, and arenas released once their
// workers end.
package udf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"go.uber.org/zap/zaptest"
)

// badWorker is an interpreter whose worker answers RESULT with the arena
// range $QUIVER_TEST_ARENA (JSON), or with a range and a body when it is "both".
func badWorker(t *testing.T, py string) string {
	dir := t.TempDir()
	prog := filepath.Join(dir, "bad_worker.py")
	err := os.WriteFile(prog, []byte(`
import json, os, sys
import quiver.worker as qw
mode = os.environ["QUIVER_TEST_ARENA"]
orig = qw.Worker._result_parts
def bad(self, f, result, reply, out_off):
    parts = orig(self, f, result, reply, out_off)
    if mode == "both":
        reply["arena"] = [0, 8]
        return parts or [b"x"]
    reply["arena"] = json.loads(mode)
    return ()
qw.Worker._result_parts = bad
sys.exit(qw.main())
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	sh := filepath.Join(dir, "python")
	if err := os.WriteFile(sh, []byte("#!/bin/sh\nexec '"+py+"' '"+prog+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return sh
}

func TestBadArenaRangeIsAProtocolError(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	fake := badWorker(t, py)
	blob := arrowBlob(t, py, "def f(a): return a", "pa.int64()")
	size, past := strconv.Itoa(arenaInitial), strconv.Itoa(arenaInitial+1)
	for _, bad := range []string{"[0, " + past + "]", "[" + size + ", 1]", "[" + past + ", 0]", "[1, 18446744073709551615]",
		"[-1, 8]", "[1, 2, 3]", "[]", `"0-8"`, "both"} {
		t.Run(bad, func(t *testing.T) {
			pool, err := NewWorkerPool(PoolConfig{Workers: 1, Python: fake, Output: os.Stderr,
				Env: []string{"QUIVER_TEST_ARENA=" + bad}}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			f, _ := NewPyFunc("id", blob, arrow.PrimitiveTypes.Int64, pool)
			_, err = evalPy(t, f, mem, 1, 2, 3)
			if !errors.Is(err, ErrWorkerDied) || !strings.Contains(err.Error(), "protocol error") {
				t.Fatalf("got %v, want ErrWorkerDied for a protocol error", err)
			}
		})
	}
}

// arenaFootprint counts this process's open fds and its mappings of arenas.
func arenaFootprint(t *testing.T) (fds, maps int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	m, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents), strings.Count(string(m), "memfd:quiver-arena")
}

// TestArenasAreReleased: arenas of workers that stopped, died or were
// replaced leave no fd and no mapping behind.
func TestArenasAreReleased(t *testing.T) {
	py := testPython(t)
	mem := newMem(t)
	fds0, maps0 := arenaFootprint(t)
	pool, err := NewWorkerPool(PoolConfig{Workers: 2, Python: py, Output: os.Stderr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := NewPyFunc("id", arrowBlob(t, py, "def f(a): return a", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	die, _ := NewPyFunc("die", arrowBlob(t, py, "import os\ndef f(a): os._exit(3)", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	big := seqInt64(mem, 2<<20, 0) // 16 MiB: the arena grows
	defer big.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < 4; i++ {
		out, err := id.Eval(ctx, mem, []arrow.Array{big})
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
		if _, err := die.Eval(ctx, mem, []arrow.Array{big}); !errors.Is(err, ErrWorkerDied) {
			t.Fatalf("got %v, want ErrWorkerDied", err)
		}
	}
	// The last replacement may still be starting.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, maps := arenaFootprint(t)
		if maps-maps0 == 2 {
			break
		}
		if maps-maps0 > 2 || time.Now().After(deadline) {
			t.Fatalf("%d arena mappings with 2 workers", maps-maps0)
		}
	}
	pool.Close()
	var fds, maps int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fds, maps = arenaFootprint(t); (fds <= fds0 && maps == maps0) || time.Now().After(deadline) {
			break
		}
	}
	if fds > fds0 || maps != maps0 {
		t.Fatalf("after Close: %d fds (%d before), %d arena mappings (%d before)", fds, fds0, maps, maps0)
	}
}
