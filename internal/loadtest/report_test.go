// Pure tests of the aggregation: tallies, merging, rates and percentiles.
package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestTally(t *testing.T) {
	// Two workers: one with 100 successes of 1..100 ms latency, one with
	// three failures and a success of 1 s.
	a, b := NewTally(), NewTally()
	for i := 1; i <= 100; i++ {
		due := time.Duration(i) * 10 * ms
		a.Add(Outcome{Due: due, Done: due + time.Duration(i)*ms, Rows: 10, Bytes: 100})
	}
	b.Add(Outcome{Due: 5 * ms, Done: 6 * ms, Code: "NotFound", Msg: "no such function"})
	b.Add(Outcome{Due: 7 * ms, Done: 8 * ms, Code: "NotFound", Msg: "later message"})
	b.Add(Outcome{Due: 9 * ms, Done: 10 * ms, Code: "Unavailable", Msg: "draining"})
	b.Add(Outcome{Due: 1 * time.Second, Done: 2 * time.Second, Rows: 10, Bytes: 100})
	a.Merge(b)
	var rep Report
	a.Fill(&rep, 0, time.Minute)
	if rep.Sent != 104 || rep.Succeeded != 101 || rep.Failed != 3 || rep.Sent != rep.Succeeded+rep.Failed {
		t.Fatalf("counts %d sent %d ok %d failed", rep.Sent, rep.Succeeded, rep.Failed)
	}
	if rep.Errors["NotFound"] != 2 || rep.Errors["Unavailable"] != 1 || rep.ErrorSamples["NotFound"] != "no such function" {
		t.Fatalf("errors %v samples %v", rep.Errors, rep.ErrorSamples)
	}
	if got := rep.Summary(); got != "NotFound 2, Unavailable 1" {
		t.Fatalf("summary %q", got)
	}
	if rep.ErrorRate != 3.0/104 {
		t.Fatalf("error rate %v", rep.ErrorRate)
	}
	// Measured from the start (0) to the last answer (2 s).
	if rep.ElapsedS != 2 || rep.Rows != 1010 || rep.Bytes != 10100 {
		t.Fatalf("elapsed %v rows %d bytes %d", rep.ElapsedS, rep.Rows, rep.Bytes)
	}
	if rep.BatchesPerS != 101/2.0 || rep.RowsPerS != 1010/2.0 || rep.MBPerS != 10100/1e6/2 {
		t.Fatalf("rates %+v", rep)
	}
	// Percentiles within HdrHistogram's 3 significant digits.
	l := rep.LatencyUS
	near := func(got int64, want float64) bool { return float64(got) >= want*0.999 && float64(got) <= want*1.001 }
	if !near(l.Min, 1000) || !near(l.P50, 51000) || !near(l.P90, 91000) || !near(l.P99, 100000) || !near(l.Max, 1e6) {
		t.Fatalf("latency %+v", l)
	}
	var sb strings.Builder
	if err := rep.WriteText(&sb); err != nil || !strings.Contains(sb.String(), "NotFound") {
		t.Fatalf("text report %q: %v", sb.String(), err)
	}
}

func TestTallyEmpty(t *testing.T) {
	var rep Report
	NewTally().Fill(&rep, time.Second, 3*time.Second)
	if rep.Sent != 0 || rep.ErrorRate != 0 || rep.ElapsedS != 3 || rep.LatencyUS != (Latency{}) || rep.Errors == nil {
		t.Fatalf("empty report %+v", rep)
	}
}
