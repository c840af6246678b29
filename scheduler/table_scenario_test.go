// Scenario commands for table calls (testdata/table.txt):
//
//	tablecheck ROWS IDX...           CheckTableRows on a task of ROWS rows
//	tablejoin OFFSET:IDX,IDX... ...  JoinTableRows of tasks at those offsets
package scheduler

import (
	"strconv"
	"strings"

	"github.com/quiver-udf/quiver/internal/scenario"
)

func (st *scenarioState) execTable(s scenario.Step, f []string) []string {
	if f[0] == "tablecheck" {
		n := st.nums(s, f, 1)
		idx := make([]int32, 0, len(n)-2)
		for _, v := range n[2:] {
			idx = append(idx, int32(v))
		}
		if err := CheckTableRows(idx, n[1]); err != nil {
			return []string{"error: " + err.Error()}
		}
		return []string{"ok"}
	}
	var parts []TableRows
	for _, p := range f[1:] {
		off, list, ok := strings.Cut(p, ":")
		o, err := strconv.ParseInt(off, 10, 64)
		if !ok || err != nil {
			st.t.Fatalf("line %d: %q is not OFFSET:IDX,...", s.Line, p)
		}
		part := TableRows{Offset: o}
		for _, v := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' }) {
			i, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				st.t.Fatalf("line %d: %q is not a row index", s.Line, v)
			}
			part.Rows = append(part.Rows, int32(i))
		}
		parts = append(parts, part)
	}
	var out []string
	for _, v := range JoinTableRows(parts) {
		out = append(out, strconv.Itoa(int(v)))
	}
	return []string{orNone(out)}
}
