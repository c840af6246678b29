// Pure tests of the schedule: open-loop due times, closed-loop ends,
// replay pacing with a speed.
package loadtest

import (
	"fmt"
	"testing"
	"time"
)

const ms = time.Millisecond

// requests lists the requests of a plan from k = 0 until it ends (at most
// max), with closed-loop workers asking at now(k).
func requests(p Plan, max int, now func(k int64) time.Duration) []Request {
	var out []Request
	for k := int64(0); k < int64(max); k++ {
		r, ok := p.Next(k, now(k))
		if !ok {
			break
		}
		out = append(out, r)
	}
	return out
}

func TestPlanFixedRate(t *testing.T) {
	p := Plan{Batches: 3, Rate: 100, Warmup: 20 * ms, Duration: 50 * ms}
	if err := p.Check(); err != nil || !p.Open() {
		t.Fatalf("check %v, open %v", err, p.Open())
	}
	// Due every 10 ms from 0, whatever the clock says; the last one due
	// before 70 ms; the first two (before 20 ms) not measured.
	got := requests(p, 100, func(int64) time.Duration { return time.Hour })
	want := "0:b0@0s- 1:b1@10ms- 2:b2@20ms+ 3:b0@30ms+ 4:b1@40ms+ 5:b2@50ms+ 6:b0@60ms+"
	if s := show(got); s != want {
		t.Fatalf("got  %s\nwant %s", s, want)
	}
	if n := p.Unsent(4); n != 3 {
		t.Fatalf("Unsent(4) = %d, want 3", n)
	}
	// A rate whose interval is not a whole number of nanoseconds does not
	// drift: request 3,000,000 at 3 per second is due at 1,000,000 s.
	q := Plan{Batches: 1, Rate: 3, Duration: 2e6 * time.Second}
	if r, _ := q.Next(3e6, 0); r.Due != 1e6*time.Second {
		t.Fatalf("request 3e6 at 3/s due at %v", r.Due)
	}
}

func TestPlanClosedLoop(t *testing.T) {
	p := Plan{Batches: 2, Warmup: 10 * ms, Duration: 30 * ms}
	if p.Open() {
		t.Fatal("a plan without rate or pacing is open")
	}
	// Workers ask every 7 ms: due when asked; none from 40 ms on.
	got := requests(p, 100, func(k int64) time.Duration { return time.Duration(k) * 7 * ms })
	want := "0:b0@0s- 1:b1@7ms- 2:b0@14ms+ 3:b1@21ms+ 4:b0@28ms+ 5:b1@35ms+"
	if s := show(got); s != want {
		t.Fatalf("got  %s\nwant %s", s, want)
	}
	if p.Unsent(6) != 0 {
		t.Fatal("a closed loop has unsent requests")
	}
	// One pass: a limit and no duration.
	one := Plan{Batches: 3, Limit: 3}
	if s := show(requests(one, 100, func(int64) time.Duration { return time.Hour })); s != "0:b0@1h0m0s+ 1:b1@1h0m0s+ 2:b2@1h0m0s+" {
		t.Fatalf("one pass: %s", s)
	}
}

func TestReplayPacing(t *testing.T) {
	arrivals := []time.Duration{100 * ms, 110 * ms, 130 * ms}
	for _, tc := range []struct {
		speed  float64
		pacing string
		period time.Duration
	}{
		{1, "[0s 10ms 30ms]", 45 * ms}, // span 30 ms plus the mean gap 15 ms
		{2, "[0s 5ms 15ms]", 22500 * time.Microsecond},
		{0.5, "[0s 20ms 60ms]", 90 * ms},
	} {
		pacing, period, err := ReplayPacing(arrivals, tc.speed)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(pacing) != tc.pacing || period != tc.period {
			t.Fatalf("speed %v: pacing %v period %v, want %s %v", tc.speed, pacing, period, tc.pacing, tc.period)
		}
	}
	// In a plan, passes repeat at the period: at speed 2, request 4 (batch
	// 1 of the second pass) is due at 22.5 + 5 ms.
	pacing, period, _ := ReplayPacing(arrivals, 2)
	p := Plan{Batches: 3, Pacing: pacing, Period: period, Duration: 50 * ms}
	if err := p.Check(); err != nil || !p.Open() {
		t.Fatalf("check %v, open %v", err, p.Open())
	}
	got := show(requests(p, 100, func(int64) time.Duration { return 0 }))
	want := "0:b0@0s+ 1:b1@5ms+ 2:b2@15ms+ 3:b0@22.5ms+ 4:b1@27.5ms+ 5:b2@37.5ms+ 6:b0@45ms+"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}

	for name, bad := range map[string]struct {
		arrivals []time.Duration
		speed    float64
	}{
		"zero speed":     {arrivals, 0},
		"negative speed": {arrivals, -1},
		"one batch":      {arrivals[:1], 1},
		"all at once":    {[]time.Duration{ms, ms, ms}, 1},
		"unsorted":       {[]time.Duration{ms, 3 * ms, 2 * ms, 4 * ms}, 1},
	} {
		if _, _, err := ReplayPacing(bad.arrivals, bad.speed); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPlanCheck(t *testing.T) {
	for name, p := range map[string]Plan{
		"no batches":      {Duration: ms},
		"endless":         {Batches: 1},
		"rate and pacing": {Batches: 1, Rate: 1, Pacing: []time.Duration{0}, Period: ms, Duration: ms},
		"short pacing":    {Batches: 2, Pacing: []time.Duration{0}, Period: ms, Duration: ms},
		"negative":        {Batches: 1, Duration: ms, Warmup: -ms},
	} {
		if p.Check() == nil {
			t.Errorf("%s: Check passed", name)
		}
	}
}

// show prints requests as k:bBATCH@DUE followed by + (measured) or -.
func show(rs []Request) string {
	s := ""
	for i, r := range rs {
		if i > 0 {
			s += " "
		}
		m := "-"
		if r.Measured {
			m = "+"
		}
		s += fmt.Sprintf("%d:b%d@%v%s", r.K, r.Batch, r.Due, m)
	}
	return s
}
