// Worker choice: scenarios of PickWorker (testdata/pick.txt), and the pool
// applying it to real workers.
package udf

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/internal/scenario"
)

// A pick scenario sets the idle workers and picks among them:
//
//	idle wID[:FN,FN...] ...   the idle workers and the functions warm on each
//	pick FN                   print the worker PickWorker chooses, or none
//	run FN                    pick, print, and make FN warm on the worker
func TestPickScenarios(t *testing.T) {
	scenario.Run(t, "testdata/pick.txt", func(t *testing.T) func(scenario.Step) []string {
		var idle []WorkerView
		return func(s scenario.Step) []string {
			f := strings.Fields(s.Cmd)
			switch f[0] {
			case "idle":
				idle = idle[:0]
				for _, spec := range f[1:] {
					name, fns, _ := strings.Cut(spec, ":")
					id, err := strconv.Atoi(strings.TrimPrefix(name, "w"))
					if err != nil {
						t.Fatalf("line %d: worker %q is not wN", s.Line, name)
					}
					v := WorkerView{ID: id, Warm: map[string]bool{}}
					for _, fn := range strings.Split(fns, ",") {
						if fn != "" {
							v.Warm[fn] = true
						}
					}
					idle = append(idle, v)
				}
				return nil
			case "pick", "run":
				if len(f) != 2 {
					t.Fatalf("line %d: %s FN", s.Line, f[0])
				}
				i := PickWorker(idle, f[1])
				if i < 0 {
					return []string{"none"}
				}
				if f[0] == "run" {
					idle[i].Warm[f[1]] = true
				}
				return []string{"w" + strconv.Itoa(idle[i].ID)}
			}
			t.Fatalf("line %d: unknown command %q", s.Line, f[0])
			return nil
		}
	})
}

// TestPoolPrefersWarmWorkers: two functions taking turns on two workers
// each stay on the worker that loaded them.
func TestPoolPrefersWarmWorkers(t *testing.T) {
	py := testPython(t)
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	pool := newTestPool(t, py, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Both workers ready before the first task, so that each has a choice.
	w1, err := pool.acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	w2, err := pool.acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	pool.release(w1)
	pool.release(w2)
	a, _ := NewPyFunc("a", pyBlob(t, py, "def f(s): return s + 1", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	b, _ := NewPyFunc("b", pyBlob(t, py, "def f(s): return s + 2", "pa.int64()"), arrow.PrimitiveTypes.Int64, pool)
	for i := 0; i < 6; i++ {
		f := a
		if i%2 == 1 {
			f = b
		}
		out, err := evalPy(t, f, mem, 1, 2)
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
	}
	for _, w := range []*pyWorker{w1, w2} {
		if len(w.loaded) != 1 {
			t.Fatalf("worker %d loaded %v, want one function each", w.id, w.loaded)
		}
	}
}
