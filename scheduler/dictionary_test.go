// Tests of dictionary-encoded arguments and of functions of no arguments,
// through Scheduler.Run with checked memory.
package scheduler

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/quiver-udf/quiver/udf"
)

// strings builds a utf8 column and the same values dictionary-encoded
// (int32 indices); "" stands for null.
func (f *fixture) strings(values []string) (plain, dict arrow.Array) {
	pb := array.NewStringBuilder(f.mem)
	defer pb.Release()
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int32, ValueType: arrow.BinaryTypes.String}
	db := array.NewDictionaryBuilder(f.mem, dt).(*array.BinaryDictionaryBuilder)
	defer db.Release()
	for _, v := range values {
		if v == "" {
			pb.AppendNull()
			db.AppendNull()
			continue
		}
		pb.Append(v)
		if err := db.AppendString(v); err != nil {
			f.t.Fatal(err)
		}
	}
	return pb.NewArray(), db.NewArray()
}

func (f *fixture) record(cols ...arrow.Array) arrow.RecordBatch {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: "_" + string(rune('0'+i)), Type: c.DataType(), Nullable: true}
		defer c.Release()
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(cols[0].Len()))
}

// runRecs runs fn over recs (the fixture releases them) and returns the
// first output column of each output batch.
func (f *fixture) runRecs(fn udf.Func, opts CallOptions, recs ...arrow.RecordBatch) ([]arrow.Array, error) {
	f.t.Helper()
	f.held = append(f.held, recs...)
	b, err := Bind(fn, recs[0].Schema(), opts)
	if err != nil {
		return nil, err
	}
	var out []arrow.Array
	err = f.sched.Run(context.Background(), b, newSliceSource(recs), func(rec arrow.RecordBatch, _ BatchInfo) error {
		rec.Retain()
		f.held = append(f.held, rec)
		out = append(out, rec.Column(0))
		return nil
	})
	return out, err
}

// TestDictionaryArguments: a native kernel gives on dictionary-encoded
// columns exactly what it gives on the decoded ones, over several tasks.
func TestDictionaryArguments(t *testing.T) {
	f := newFixture(t, Config{Executors: 3})
	words := []string{"kitten", "sitting", "", "flaw", "lawn", "kitten", "", "saturday", "sunday", "flaw"}
	other := []string{"sitting", "kitten", "x", "", "flaw", "kitten", "", "sunday", "saturday", "lawn"}
	column := func(values []string, encoded bool) arrow.Array {
		plain, dict := f.strings(values)
		if encoded {
			plain.Release()
			return dict
		}
		dict.Release()
		return plain
	}
	opts := CallOptions{RowsPerTask: 3}
	lev := builtin(t, "levenshtein")
	want, err := f.runRecs(lev, opts, f.record(column(words, false), column(other, false)))
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range [][2]bool{{true, true}, {false, true}, {true, false}} {
		got, err := f.runRecs(lev, opts, f.record(column(words, enc[0]), column(other, enc[1])))
		if err != nil {
			t.Fatalf("encoded %v: %v", enc, err)
		}
		if !array.Equal(got[0], want[0]) {
			t.Errorf("encoded %v: levenshtein = %v, want %v", enc, got[0], want[0])
		}
	}
}

// TestDictionaryWrongValueType: the type error names the dictionary's value type.
func TestDictionaryWrongValueType(t *testing.T) {
	dt := &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int8, ValueType: arrow.PrimitiveTypes.Int64}
	in := arrow.NewSchema([]arrow.Field{{Name: "a", Type: dt}, {Name: "b", Type: arrow.BinaryTypes.String}}, nil)
	_, err := Bind(builtin(t, "levenshtein"), in, CallOptions{})
	var ae *udf.ArgError
	if !errors.As(err, &ae) || ae.Pos != 0 || !arrow.TypeEqual(ae.Got, arrow.PrimitiveTypes.Int64) {
		t.Fatalf("Bind: %v, want an ArgError for argument 0 naming int64", err)
	}
}

// TestNullaryFunction: builtin_healthy answers batches without columns, one
// 1 per row, and a function with arguments still refuses them.
func TestNullaryFunction(t *testing.T) {
	f := newFixture(t, Config{Executors: 2})
	empty := arrow.NewSchema(nil, nil)
	recs := []arrow.RecordBatch{
		array.NewRecordBatch(empty, nil, 5),
		array.NewRecordBatch(empty, nil, 0),
		array.NewRecordBatch(empty, nil, 1),
	}
	out, err := f.runRecs(builtin(t, "builtin_healthy"), CallOptions{RowsPerTask: 2}, recs...)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range []int{5, 0, 1} {
		col := out[i].(*array.Int32)
		if col.Len() != n || col.NullN() != 0 {
			t.Fatalf("batch %d: %v, want %d ones", i, col, n)
		}
		for k := 0; k < n; k++ {
			if col.Value(k) != 1 {
				t.Fatalf("batch %d: %v, want %d ones", i, col, n)
			}
		}
	}
	if _, err := Bind(builtin(t, "identity"), empty, CallOptions{}); !errors.Is(err, udf.ErrInvalidArgument) {
		t.Fatalf("identity without columns: %v, want ErrInvalidArgument", err)
	}
}
