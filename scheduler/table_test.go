// Table calls on a real Scheduler: outputs of any length re-sequenced with
// their row indices, scalar functions called as tables, bad row indices.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/udf"
)

// explode is a table function over int64: row v yields v%4 rows v*10+k
// (k = 0..), a null row one null; fail makes a value raise; bad makes the
// indices of a task wrong in one way.
type explode struct {
	testFunc
	fail func(int64) bool
	bad  string // "", "range", "decreasing", "null", "count"
}

func newExplode(bad string, fail func(int64) bool) explode {
	return explode{testFunc: testFunc{name: "explode"}, fail: fail, bad: bad}
}

func (explode) IsTable() bool { return true }

func (e explode) EvalTable(_ context.Context, mem memory.Allocator, args []arrow.Array) (*array.Int32, arrow.Array, time.Duration, error) {
	x := args[0].(*array.Int64)
	idx := array.NewInt32Builder(mem)
	defer idx.Release()
	vals := array.NewInt64Builder(mem)
	defer vals.Release()
	for i := 0; i < x.Len(); i++ {
		if x.IsNull(i) {
			idx.Append(int32(i))
			vals.AppendNull()
			continue
		}
		v := x.Value(i)
		if e.fail != nil && e.fail(v) {
			return nil, nil, 0, fmt.Errorf("%w at value %d", errBoom, v)
		}
		for k := int64(0); k < v%4; k++ {
			idx.Append(int32(i))
			vals.Append(v*10 + k)
		}
	}
	switch e.bad {
	case "range":
		idx.Append(int32(x.Len()))
		vals.Append(0)
	case "decreasing":
		idx.Append(int32(x.Len() - 1))
		idx.Append(0)
		vals.AppendValues([]int64{1, 2}, nil)
	case "null":
		idx.AppendNull()
		vals.Append(0)
	case "count":
		vals.Append(0)
	}
	return idx.NewInt32Array(), vals.NewArray(), time.Millisecond, nil
}

// wantExplode is explode's output for one batch: row indices and values.
func wantExplode(x *array.Int64) ([]int32, []*int64) {
	var rows []int32
	var vals []*int64
	for i := 0; i < x.Len(); i++ {
		if x.IsNull(i) {
			rows, vals = append(rows, int32(i)), append(vals, nil)
			continue
		}
		v := x.Value(i)
		for k := int64(0); k < v%4; k++ {
			w := v*10 + k
			rows, vals = append(rows, int32(i)), append(vals, &w)
		}
	}
	return rows, vals
}

func checkTableOut(t *testing.T, bi int, rec arrow.RecordBatch, rows []int32, vals []*int64) {
	t.Helper()
	if rec.Schema().Field(0).Name != udf.TableRowField || !arrow.TypeEqual(rec.Column(0).DataType(), arrow.PrimitiveTypes.Int32) {
		t.Fatalf("batch %d: schema %s, want %q int32 first", bi, rec.Schema(), udf.TableRowField)
	}
	if int(rec.NumRows()) != len(rows) {
		t.Fatalf("batch %d: %d rows, want %d", bi, rec.NumRows(), len(rows))
	}
	gotRows := rec.Column(0).(*array.Int32)
	gotVals := rec.Column(1).(*array.Int64)
	for i := range rows {
		ok := gotRows.Value(i) == rows[i] && gotVals.IsNull(i) == (vals[i] == nil) &&
			(vals[i] == nil || gotVals.Value(i) == *vals[i])
		if !ok {
			t.Fatalf("batch %d row %d: (%d, %s), want (%d, %v)", bi, i, gotRows.Value(i), gotVals.ValueStr(i), rows[i], vals[i])
		}
	}
}

// TestRunTable: any number of rows per input row, empty batches and rows
// that yield nothing included, across many tasks, in order, each row's
// index relative to its batch.
func TestRunTable(t *testing.T) {
	for _, per := range []int64{1, 3, 7, 1000} {
		t.Run(fmt.Sprint(per), func(t *testing.T) {
			f := newFixture(t, Config{Executors: 4})
			in := f.batches([]int{0, 1, 4, 50, 1003}, 9)
			out, err := f.run(context.Background(), newExplode("", nil), CallOptions{RowsPerTask: per}, newSliceSource(in))
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(in) {
				t.Fatalf("%d output batches for %d inputs", len(out), len(in))
			}
			for bi := range in {
				rows, vals := wantExplode(in[bi].Column(0).(*array.Int64))
				checkTableOut(t, bi, out[bi], rows, vals)
			}
		})
	}
}

// TestRunTableScalar: a scalar function called as a table yields its rows
// one to one, each tied to itself.
func TestRunTableScalar(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	in := f.batches([]int{5, 0, 17}, 4)
	out, err := f.run(context.Background(), identityFunc(t), CallOptions{RowsPerTask: 4, Table: true}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	for bi := range in {
		x := in[bi].Column(0).(*array.Int64)
		rows := make([]int32, x.Len())
		vals := make([]*int64, x.Len())
		for i := range rows {
			rows[i] = int32(i)
			if x.IsValid(i) {
				v := x.Value(i)
				vals[i] = &v
			}
		}
		checkTableOut(t, bi, out[bi], rows, vals)
	}
}

// TestRunTableBadIndices: indices outside the task, decreasing or null, or
// a count that differs from the values', fail the call as a bad result,
// naming the task. (Under OnErrorNull a bad result is isolated row by row,
// where explode's decreasing indices are fine: one row has only index 0.)
func TestRunTableBadIndices(t *testing.T) {
	for _, bad := range []string{"range", "decreasing", "null", "count"} {
		for _, onErr := range []OnError{OnErrorRaise, OnErrorNull} {
			if bad == "decreasing" && onErr == OnErrorNull {
				continue
			}
			t.Run(bad+"/"+onErr.String(), func(t *testing.T) {
				f := newFixture(t, Config{Executors: 2})
				src := newSliceSource(f.batches([]int{10, 25}, 0))
				_, err := f.run(context.Background(), newExplode(bad, nil), CallOptions{RowsPerTask: 10, OnError: onErr}, src)
				var te *TaskError
				if !errors.Is(err, ErrBadResult) || !errors.As(err, &te) || te.Func != "explode" {
					t.Fatalf("Run returned %v, want a TaskError of explode wrapping ErrBadResult", err)
				}
				checkClosed(t, src.closed)
			})
		}
	}
}

// TestRunTableOnErrorNull: a failing input row yields one null row with
// its message; the others yield what they yield.
func TestRunTableOnErrorNull(t *testing.T) {
	f := newFixture(t, Config{Executors: 3})
	bad := func(v int64) bool { return v%5 == 2 }
	in := f.batches([]int{40, 13}, 6)
	out, err := f.run(context.Background(), newExplode("", bad), CallOptions{RowsPerTask: 4, OnError: OnErrorNull}, newSliceSource(in))
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for bi := range in {
		x := in[bi].Column(0).(*array.Int64)
		var rows []int32
		var vals []*int64
		var msgs []string
		for i := 0; i < x.Len(); i++ {
			if x.IsValid(i) && bad(x.Value(i)) {
				failed++
				rows, vals = append(rows, int32(i)), append(vals, nil)
				msgs = append(msgs, fmt.Errorf("%w at value %d", errBoom, x.Value(i)).Error())
				continue
			}
			one := array.NewSlice(x, int64(i), int64(i+1))
			r, v := wantExplode(one.(*array.Int64))
			one.Release()
			for k := range r {
				rows, vals, msgs = append(rows, int32(i)), append(vals, v[k]), append(msgs, "")
			}
		}
		checkTableOut(t, bi, out[bi], rows, vals)
		got := out[bi].Column(2).(*array.String)
		for i, m := range msgs {
			if (m == "") != got.IsNull(i) || (m != "" && got.Value(i) != m) {
				t.Fatalf("batch %d row %d: message %q, want %q", bi, i, got.ValueStr(i), m)
			}
		}
	}
	if failed == 0 {
		t.Fatal("no row failed: the test checks nothing")
	}
}
