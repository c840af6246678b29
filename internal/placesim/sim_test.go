package placesim

import (
	"testing"
	"time"

	"github.com/quiver-udf/quiver/scheduler"
)

// TestSmallCluster: every task runs exactly once, no faster than ideal, and
// a skewed load spreads: with one origin of four nodes, most tasks run on
// peers.
func TestSmallCluster(t *testing.T) {
	cfg := Config{Nodes: 4, Slots: 2, Origins: 1, Tasks: 2000, MinCost: 10 * time.Millisecond, MaxCost: 30 * time.Millisecond,
		Stale: 100 * time.Millisecond, RTT: 200 * time.Microsecond, Bytes: 10_000, Seed: 1}
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Makespan < r.Ideal {
		t.Fatalf("makespan %v below the ideal %v: the simulation lost work", r.Makespan, r.Ideal)
	}
	if r.Spilled < cfg.Tasks/2 {
		t.Fatalf("%d of %d tasks spilled, want most of them", r.Spilled, cfg.Tasks)
	}
	// Alone, the origin takes four times as long.
	cfg.Policy = scheduler.Local{}
	alone, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if alone.Spilled != 0 || alone.Makespan < 3*r.Makespan {
		t.Fatalf("Local: %v; Hybrid: %v", alone, r)
	}
}

// TestCheapTasksStay: 50 us tasks are not worth a 250 us round trip.
func TestCheapTasksStay(t *testing.T) {
	r, err := Run(Config{Nodes: 4, Slots: 2, Origins: 1, Tasks: 5000, MinCost: 40 * time.Microsecond, MaxCost: 60 * time.Microsecond,
		Stale: 100 * time.Millisecond, RTT: 250 * time.Microsecond, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.Spilled != 0 {
		t.Fatalf("%v: cheap tasks moved", r)
	}
}

// TestThousandNodes: the scale, 1,000 nodes with views 100 ms
// stale, tasks of 1 to 100 ms at 100 origins, as the node runs it (room
// reports on) and without room reports. The figures go to
// bench/RESULTS.md; the test checks that the runs are sound and that room
// reports shorten the makespan.
func TestThousandNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds")
	}
	cfg := Config{Nodes: 1000, Slots: 4, Origins: 100, Tasks: 200_000, MinCost: time.Millisecond, MaxCost: 100 * time.Millisecond,
		Arrival: time.Second, Stale: 100 * time.Millisecond, RTT: 250 * time.Microsecond, Bytes: 100_000, Seed: 3}
	var rs [2]Result
	for i, noRoom := range []bool{false, true} {
		cfg.NoRoom = noRoom
		r, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(map[bool]string{false: "with room reports: ", true: "without room reports: "}[noRoom] + r.String())
		if r.Makespan < r.Ideal || r.Decisions < 400_000 {
			t.Fatalf("unsound run: %v", r)
		}
		rs[i] = r
	}
	if rs[0].Makespan >= rs[1].Makespan {
		t.Fatalf("room reports did not help: %v with, %v without", rs[0], rs[1])
	}
}

// TestRoomReports: at a smaller scale, room reports put freed slots to
// work sooner than the 100 ms load reports: a shorter makespan, for every
// seed.
func TestRoomReports(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		cfg := Config{Nodes: 100, Slots: 4, Origins: 10, Tasks: 20_000, MinCost: time.Millisecond, MaxCost: 100 * time.Millisecond,
			Arrival: time.Second, Stale: 100 * time.Millisecond, RTT: 250 * time.Microsecond, Bytes: 100_000, Seed: seed}
		with, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		cfg.NoRoom = true
		without, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if with.Makespan >= without.Makespan || with.Makespan < with.Ideal {
			t.Fatalf("seed %d: with room reports %v; without %v", seed, with, without)
		}
	}
}

func TestBadConfig(t *testing.T) {
	if _, err := Run(Config{Nodes: 2, Slots: 1, Origins: 3, Tasks: 1, MinCost: 1, MaxCost: 1, Stale: 1}); err == nil {
		t.Fatal("more origins than nodes: no error")
	}
}
