// Scenario tests of the deterministic core: testdata/*.txt drive Split,
// the task sizes, Core, the cost estimate, the retry budget and placement,
// and say what each command must print.
package scheduler

import (
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/quiver-udf/quiver/internal/scenario"
	"github.com/quiver-udf/quiver/udf"
)

// A scenario file is a list of commands, each followed by the lines it must
// print, each of those prefixed by "> ". Lines starting with # are comments.
//
//	window N              start a new Core admitting N batches
//	split ROWS PER        print the ranges Split makes
//	taskrows ROWS PER EXECUTORS
//	costrows ROWS COST_NS WORKERS   TaskRowsByCost
//	jobrows ROWS COST_NS WORKERS    IndependentTaskRows
//	concrows ROWS COST_NS WORKERS N ConcurrentTaskRows
//	admit TASKS           admit a batch cut into TASKS tasks, print its sequence
//	complete SEQ T...     complete tasks T... of batch SEQ
//	shuffle SEQ N SEED    complete tasks 0..N-1 of batch SEQ in a random order
//	ready                 print the batches ready to emit, in order
//
//	estimator             start a new CostEstimator
//	observe ROWS NS       one measured task
//	tasks N MINROWS MAXROWS PERTASK_NS PERROW_NS [NOISE_PCT SEED]
//	                      N measured tasks of five sizes from MINROWS to
//	                      MAXROWS, each off by up to NOISE_PCT percent
//	estimate              print the fitted cost
//	avgrow ROWS           print its equivalent cost per row at ROWS rows
//	sized ROWS WORKERS    TaskRowsByCost at that cost
//	jobsized ROWS WORKERS IndependentTaskRows at that cost
//	fit                   print the fitted cost and whether it is separated
//	fixedsized ROWS WORKERS   TaskRowsForCost at that cost
//	probe ROWS PER        print the task sizes SplitProbing makes
//	solo TASKS ROWS WORK_MS   print SoloMs at that cost
//
//	classify ERROR        print the Failure of a sample error (see sampleErrors)
//	decide FAILURE ATTEMPTS RETRIES [null] [row]   print the Action
//
//	place LANE SLOTS QUEUED ROWS    print where Local places the task
//
//	nopeers               forget the peers
//	peer NAME SLOTS RUNNING QUEUED INFLIGHT [warm] [rtt=NS] [nspb=F]
//	                      [atreport=N]  add a peer's view
//	hybrid SLOTS RUNNING QUEUED COST_NS BYTES RAND [spilled]
//	                      print where Hybrid places the task
//	spread SLOTS RUNNING QUEUED COST_NS BYTES N
//	                      place N tasks with N random numbers, print how
//	                      many each place got
//
//	tablecheck, tablejoin           table calls (table_scenario_test.go)
func TestScenarios(t *testing.T) {
	scenario.Run(t, "testdata/*.txt", func(t *testing.T) func(scenario.Step) []string {
		st := &scenarioState{t: t}
		return st.exec
	})
}

type scenarioState struct {
	t     *testing.T
	core  *Core
	est   *CostEstimator
	peers []PeerView
}

// nums parses f[1:] as numbers, leaving words as zero, and checks that
// there are at least k arguments.
func (st *scenarioState) nums(s scenario.Step, f []string, k int, words ...string) []int64 {
	if len(f) < k+1 {
		st.t.Fatalf("line %d: %s needs %d arguments", s.Line, f[0], k)
	}
	n := make([]int64, len(f))
	for i := 1; i < len(f); i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil && !(i <= len(words) && words[i-1] != "") {
			st.t.Fatalf("line %d: %q is not a number", s.Line, f[i])
		}
		n[i] = v
	}
	return n
}

func (st *scenarioState) exec(s scenario.Step) []string {
	f := strings.Fields(s.Cmd)
	switch f[0] {
	case "window", "admit", "complete", "shuffle", "ready", "split", "taskrows", "costrows", "jobrows", "concrows":
		return st.execCore(s, f)
	case "estimator", "observe", "tasks", "estimate", "avgrow", "sized", "jobsized", "fit", "fixedsized", "idlesized", "solo", "probe":
		return st.execCost(s, f)
	case "classify", "decide":
		return st.execRetry(s, f)
	case "tablecheck", "tablejoin":
		return st.execTable(s, f)
	case "nopeers", "peer", "hybrid", "spread":
		return st.execHybrid(s, f)
	case "place":
		n := st.nums(s, f, 4, "lane")
		lane := map[string]Lane{"native": LaneNative, "workers": LaneWorkers}[f[1]]
		d := Local{}.Place(Snapshot{Lane: lane, Slots: int(n[2]), Queued: int(n[3])}, TaskInfo{Func: "f", Rows: n[4]})
		if d.Local() {
			return []string{"here"}
		}
		return []string{"peer " + d.Peer}
	}
	st.t.Fatalf("line %d: unknown command %q", s.Line, f[0])
	return nil
}

func (st *scenarioState) execCore(s scenario.Step, f []string) []string {
	t := st.t
	switch f[0] {
	case "split":
		n := st.nums(s, f, 2)
		var parts []string
		for _, r := range Split(n[1], n[2]) {
			parts = append(parts, fmt.Sprintf("[%d,%d)", r.Offset, r.Offset+r.Len))
		}
		return []string{orNone(parts)}
	case "taskrows":
		n := st.nums(s, f, 3)
		return []string{strconv.FormatInt(TaskRows(n[1], n[2], int(n[3])), 10)}
	case "costrows":
		n := st.nums(s, f, 3)
		return []string{strconv.FormatInt(TaskRowsByCost(n[1], float64(n[2]), int(n[3])), 10)}
	case "jobrows":
		n := st.nums(s, f, 3)
		return []string{strconv.FormatInt(IndependentTaskRows(n[1], float64(n[2]), int(n[3])), 10)}
	case "concrows":
		n := st.nums(s, f, 4)
		return []string{strconv.FormatInt(ConcurrentTaskRows(n[1], float64(n[2]), int(n[3]), int(n[4])), 10)}
	case "window":
		n := st.nums(s, f, 1)
		st.core = NewCore(int(n[1]))
		return nil
	}
	if st.core == nil {
		t.Fatalf("line %d: %s before window", s.Line, f[0])
	}
	core := st.core
	switch f[0] {
	case "admit":
		n := st.nums(s, f, 1)
		if !core.CanAdmit() {
			return []string{"window full"}
		}
		return []string{fmt.Sprintf("b%d", core.Admit(int(n[1])))}
	case "complete":
		n := st.nums(s, f, 2)
		var out []string
		for _, task := range n[2:] {
			if err := core.Complete(int(n[1]), int(task)); err != nil {
				out = append(out, "error: "+err.Error())
			}
		}
		return out
	case "shuffle":
		n := st.nums(s, f, 3)
		perm := rand.New(rand.NewSource(n[3])).Perm(int(n[2]))
		for i, task := range perm {
			if err := core.Complete(int(n[1]), task); err != nil {
				return []string{"error: " + err.Error()}
			}
			if i == len(perm)-1 {
				break
			}
			if r := core.Ready(); len(r) > 0 {
				return []string{fmt.Sprintf("ready before its last task: %v", r)}
			}
		}
		return nil
	}
	// ready
	var parts []string
	for _, seq := range core.Ready() {
		parts = append(parts, fmt.Sprintf("b%d", seq))
	}
	return []string{orNone(parts)}
}

func (st *scenarioState) execCost(s scenario.Step, f []string) []string {
	if f[0] == "estimator" {
		st.est = &CostEstimator{}
		return nil
	}
	if st.est == nil {
		st.t.Fatalf("line %d: %s before estimator", s.Line, f[0])
	}
	switch f[0] {
	case "observe":
		n := st.nums(s, f, 2)
		st.est.Observe(n[1], float64(n[2]))
		return nil
	case "tasks":
		n := st.nums(s, f, 5)
		var rng *rand.Rand
		noise := 0.0
		if len(f) > 7 {
			noise, rng = float64(n[6])/100, rand.New(rand.NewSource(n[7]))
		}
		for i := int64(0); i < n[1]; i++ {
			rows := n[2] + (n[3]-n[2])*(i%5)/4
			ns := float64(n[4]) + float64(n[5])*float64(rows)
			if rng != nil {
				ns *= 1 + noise*(2*rng.Float64()-1)
			}
			st.est.Observe(rows, ns)
		}
		return nil
	case "estimate":
		c := st.est.Estimate()
		return []string{fmt.Sprintf("per_task=%.3gns per_row=%.3gns tasks=%d", c.PerTaskNs, c.PerRowNs, c.Tasks)}
	case "avgrow":
		n := st.nums(s, f, 1)
		return []string{fmt.Sprintf("%.3gns", st.est.Estimate().AvgPerRowNs(n[1]))}
	case "sized":
		n := st.nums(s, f, 2)
		return []string{strconv.FormatInt(TaskRowsByCost(n[1], st.est.Estimate().AvgPerRowNs(n[1]), int(n[2])), 10)}
	case "fit":
		c := st.est.Estimate()
		return []string{fmt.Sprintf("per_task=%.3gns per_row=%.3gns separated=%v", c.PerTaskNs, c.PerRowNs, c.Separated)}
	case "fixedsized":
		n := st.nums(s, f, 2)
		return []string{strconv.FormatInt(TaskRowsForCost(n[1], st.est.Estimate(), int(n[2])), 10)}
	case "idlesized":
		n := st.nums(s, f, 3)
		cost := st.est.Estimate()
		per := TaskRowsForCost(n[1], cost, int(n[2]))
		return []string{strconv.FormatInt(TaskRowsForIdle(n[1], cost, int(n[2]), int(n[3]), per), 10)}
	case "solo":
		n := st.nums(s, f, 3)
		return []string{fmt.Sprintf("%.3g", SoloMs(int(n[1]), n[2], st.est.Estimate(), float64(n[3])))}
	case "probe":
		n := st.nums(s, f, 2)
		var out []string
		for _, r := range SplitProbing(n[1], n[2]) {
			out = append(out, strconv.FormatInt(r.Len, 10))
		}
		return []string{strings.Join(out, " ")}
	}
	// jobsized
	n := st.nums(s, f, 2)
	return []string{strconv.FormatInt(IndependentTaskRows(n[1], st.est.Estimate().AvgPerRowNs(n[1]), int(n[2])), 10)}
}

// sampleErrors are the errors classify names.
var sampleErrors = map[string]error{
	"nil":        nil,
	"died":       udf.ErrWorkerDied,
	"wrapped":    fmt.Errorf("worker 3: %w", udf.ErrWorkerDied),
	"task":       &TaskError{Func: "f", Err: udf.ErrWorkerDied},
	"pyerror":    &udf.PyError{Type: "ValueError"},
	"invalid":    udf.Invalidf("no good"),
	"noworkers":  udf.ErrNoWorkers,
	"badresult":  fmt.Errorf("%w: 3 rows, want 4", ErrBadResult),
	"other":      errors.New("boom"),
	"cancelled":  errCancelledSample,
	"diedlate":   udf.ErrWorkerDied,
	"raisedlate": &udf.PyError{Type: "ValueError"},
}

// errCancelledSample stands for the call's context error.
var errCancelledSample = errors.New("context canceled")

func (st *scenarioState) execRetry(s scenario.Step, f []string) []string {
	if f[0] == "classify" {
		st.nums(s, f, 1, "error")
		err, ok := sampleErrors[f[1]]
		if !ok {
			st.t.Fatalf("line %d: no sample error %q", s.Line, f[1])
		}
		var ctxErr error
		if f[1] == "cancelled" || strings.HasSuffix(f[1], "late") {
			ctxErr = errCancelledSample
		}
		return []string{Classify(err, ctxErr).String()}
	}
	n := st.nums(s, f, 3, "failure", "", "", "flag", "flag")
	a := Attempt{Attempts: int(n[2]), Retries: int(n[3])}
	for i, name := range failureNames {
		if name == f[1] {
			a.Failure = Failure(i)
		}
	}
	if a.Failure.String() != f[1] {
		st.t.Fatalf("line %d: no failure %q", s.Line, f[1])
	}
	for _, flag := range f[4:] {
		switch flag {
		case "null":
			a.OnError = OnErrorNull
		case "row":
			a.Row = true
		default:
			st.t.Fatalf("line %d: unknown flag %q", s.Line, flag)
		}
	}
	return []string{Decide(a).String()}
}

func orNone(parts []string) string {
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
