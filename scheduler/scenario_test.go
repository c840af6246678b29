// Scenario tests of the deterministic core: testdata/*.txt drive Split,
// TaskRows and Core, and say what each command must print.
package scheduler

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/quiver-udf/quiver/internal/scenario"
)

// A scenario file is a list of commands, each followed by the lines it must
// print, each of those prefixed by "> ". Lines starting with # are comments.
//
//	window N              start a new Core admitting N batches
//	split ROWS PER        print the ranges Split makes
//	taskrows ROWS PER EXECUTORS
//	costrows ROWS COST_NS WORKERS   TaskRowsByCost
//	jobrows ROWS COST_NS WORKERS    IndependentTaskRows
//	admit TASKS           admit a batch cut into TASKS tasks, print its sequence
//	complete SEQ T...     complete tasks T... of batch SEQ
//	shuffle SEQ N SEED    complete tasks 0..N-1 of batch SEQ in a random order
//	ready                 print the batches ready to emit, in order
func TestScenarios(t *testing.T) {
	scenario.Run(t, "testdata/*.txt", func(t *testing.T) func(scenario.Step) []string {
		var core *Core
		return func(s scenario.Step) []string { return execStep(t, &core, s) }
	})
}

func execStep(t *testing.T, core **Core, s scenario.Step) []string {
	f := strings.Fields(s.Cmd)
	n := make([]int64, len(f))
	for i := 1; i < len(f); i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			t.Fatalf("line %d: %q is not a number", s.Line, f[i])
		}
		n[i] = v
	}
	need := func(k int) {
		if len(f) < k+1 {
			t.Fatalf("line %d: %s needs %d arguments", s.Line, f[0], k)
		}
		if f[0] != "window" && f[0] != "split" && f[0] != "taskrows" && f[0] != "costrows" && f[0] != "jobrows" && *core == nil {
			t.Fatalf("line %d: %s before window", s.Line, f[0])
		}
	}
	switch f[0] {
	case "window":
		need(1)
		*core = NewCore(int(n[1]))
		return nil
	case "split":
		need(2)
		var parts []string
		for _, r := range Split(n[1], n[2]) {
			parts = append(parts, fmt.Sprintf("[%d,%d)", r.Offset, r.Offset+r.Len))
		}
		return []string{orNone(parts)}
	case "taskrows":
		need(3)
		return []string{strconv.FormatInt(TaskRows(n[1], n[2], int(n[3])), 10)}
	case "costrows":
		need(3)
		return []string{strconv.FormatInt(TaskRowsByCost(n[1], float64(n[2]), int(n[3])), 10)}
	case "jobrows":
		need(3)
		return []string{strconv.FormatInt(IndependentTaskRows(n[1], float64(n[2]), int(n[3])), 10)}
	case "admit":
		need(1)
		if !(*core).CanAdmit() {
			return []string{"window full"}
		}
		return []string{fmt.Sprintf("b%d", (*core).Admit(int(n[1])))}
	case "complete":
		need(2)
		var out []string
		for _, task := range n[2:] {
			if err := (*core).Complete(int(n[1]), int(task)); err != nil {
				out = append(out, "error: "+err.Error())
			}
		}
		return out
	case "shuffle":
		need(3)
		rng := rand.New(rand.NewSource(n[3]))
		perm := rng.Perm(int(n[2]))
		for i, task := range perm {
			if err := (*core).Complete(int(n[1]), task); err != nil {
				return []string{"error: " + err.Error()}
			}
			if i == len(perm)-1 {
				break
			}
			if r := (*core).Ready(); len(r) > 0 {
				return []string{fmt.Sprintf("ready before its last task: %v", r)}
			}
		}
		return nil
	case "ready":
		var parts []string
		for _, seq := range (*core).Ready() {
			parts = append(parts, fmt.Sprintf("b%d", seq))
		}
		return []string{orNone(parts)}
	}
	t.Fatalf("line %d: unknown command %q", s.Line, f[0])
	return nil
}

func orNone(parts []string) string {
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
