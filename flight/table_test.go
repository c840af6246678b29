// Table calls end to end: a Go Flight client calls a Python table function
// registered on a node with real workers, and scalar functions as tables.
package flight

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/testpy"
	"github.com/quiver-udf/quiver/udf"
)

// tableFuncs are Python table functions over one int64 argument: explode
// yields v%4 rows v*10+k for row v (none for a null); the others misbehave.
var tableFuncs = map[string]string{
	"explode": `def f(x):
    rows, vals = [], []
    for i, v in enumerate(x.to_pylist()):
        for k in range(0 if v is None else v % 4):
            rows.append(i); vals.append(v * 10 + k)
    return rows, vals`,
	"past_end":   "def f(x):\n    return [len(x)], [0]",
	"decreasing": "def f(x):\n    return [len(x) - 1, 0], [1, 2]",
	"raises":     "def f(x):\n    raise ValueError('no rows like ' + str(x[0]))",
}

// startPythonNode starts a node with two Python workers and registers
// tableFuncs as table functions; it returns a client to it.
func startPythonNode(t *testing.T) flight.Client {
	py := testpy.Python(t, "..")
	pool, err := udf.NewWorkerPool(udf.PoolConfig{Workers: 2, Python: py, Output: os.Stderr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	n := startNode(t, nodeOptions{cfg: Config{Workers: pool}})
	c := client(t, n.tcp)
	for name, src := range tableFuncs {
		body := registerBody(t, map[string]any{"name": name, "returns": returnsOf(arrow.PrimitiveTypes.Int64), "table": true},
			testpy.Blob(t, py, src, "table", "pa.int64()"))
		if _, err := doAction(testCtx(t), c, ActionRegister, body); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
	return c
}

// TestTableFunctionCall: one output batch per input batch, in order, of any
// length, each row's index relative to its batch, over tasks of 3 rows.
func TestTableFunctionCall(t *testing.T) {
	c := startPythonNode(t)
	in := int64Batches(0, 1, 7, 40)
	defer releaseAll(in)
	res, err := exchange(testCtx(t), c, path("explode"), in[0].Schema(), in, HeaderRowsPerTask, "3")
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	want := "row: int32, explode: int64"
	if got := fieldsOf(res.schema); got != want {
		t.Fatalf("output schema %s, want %s", got, want)
	}
	if len(res.recs) != len(in) {
		t.Fatalf("%d output batches for %d inputs", len(res.recs), len(in))
	}
	for bi, rec := range res.recs {
		x := in[bi].Column(0).(*array.Int64)
		var wantRows, wantVals []string
		for i := 0; i < x.Len(); i++ {
			for k := int64(0); x.IsValid(i) && k < x.Value(i)%4; k++ {
				wantRows, wantVals = append(wantRows, fmt.Sprint(i)), append(wantVals, fmt.Sprint(x.Value(i)*10+k))
			}
		}
		gotRows, gotVals := rec.Column(0).String(), rec.Column(1).String()
		if gotRows != "["+strings.Join(wantRows, " ")+"]" || gotVals != "["+strings.Join(wantVals, " ")+"]" {
			t.Fatalf("batch %d: rows %s values %s, want %v %v", bi, gotRows, gotVals, wantRows, wantVals)
		}
	}
}

// TestTableFunctionErrors: bad row indices and exceptions are INTERNAL,
// with messages that say what was wrong; a bad header is INVALID_ARGUMENT.
func TestTableFunctionErrors(t *testing.T) {
	c := startPythonNode(t)
	in := int64Batches(5)
	defer releaseAll(in)
	cases := []struct {
		fn, header string
		code       codes.Code
		says       []string
	}{
		{"past_end", "1", codes.Internal, []string{"past_end failed on batch 0, rows [0, 5)", "row index 5, outside the task's 5 input rows"}},
		{"decreasing", "1", codes.Internal, []string{"row index 0 after 4: row indices must not decrease"}},
		{"raises", "1", codes.Internal, []string{"ValueError", "no rows like 0"}},
		{"explode", "yes", codes.InvalidArgument, []string{HeaderTableFunction, `"yes"`}},
	}
	for _, tc := range cases {
		t.Run(tc.fn, func(t *testing.T) {
			res, err := exchange(testCtx(t), c, path(tc.fn), in[0].Schema(), in, HeaderTableFunction, tc.header, HeaderRowsPerTask, "5")
			if err == nil {
				res.release()
				t.Fatal("the call succeeded")
			}
			if status.Code(err) != tc.code {
				t.Fatalf("code %s, want %s: %v", status.Code(err), tc.code, err)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Fatalf("message %q does not say %q", err, s)
				}
			}
		})
	}
}

// TestScalarAsTable: quiver-table-function: 1 makes a scalar call a table
// call, each row tied to itself.
func TestScalarAsTable(t *testing.T) {
	n := startNode(t, nodeOptions{})
	c := client(t, n.tcp)
	in := int64Batches(4, 0, 3)
	defer releaseAll(in)
	res, err := exchange(testCtx(t), c, path("identity"), in[0].Schema(), in, HeaderTableFunction, "1", HeaderRowsPerTask, "2")
	if err != nil {
		t.Fatal(err)
	}
	defer res.release()
	if got := fieldsOf(res.schema); got != "row: int32, identity: int64" {
		t.Fatalf("output schema %s", got)
	}
	for bi, rec := range res.recs {
		var rows []string
		for i := 0; i < int(in[bi].NumRows()); i++ {
			rows = append(rows, fmt.Sprint(i))
		}
		if got := abbrev(rec.Column(0)); got != "["+strings.Join(rows, " ")+"]" {
			t.Fatalf("batch %d: rows %s", bi, got)
		}
		if abbrev(rec.Column(1)) != abbrev(in[bi].Column(0)) {
			t.Fatalf("batch %d: values %s, want %s", bi, abbrev(rec.Column(1)), abbrev(in[bi].Column(0)))
		}
	}
}

func fieldsOf(s *arrow.Schema) string {
	var parts []string
	for _, f := range s.Fields() {
		parts = append(parts, f.Name+": "+f.Type.String())
	}
	return strings.Join(parts, ", ")
}
