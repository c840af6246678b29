// --verify against a live node: right answers count nothing, answers
// checked against another function's reference count every row wrong,
// and short or long answers count missing and duplicated rows.
package loadtest

import (
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestVerifyBuiltinsRight(t *testing.T) {
	n := startNode(t, nil, nil)
	for _, fn := range []struct{ name, spec string }{
		{"identity", "rows=500,cols=int64:1,batches=2"},
		{"identity", "rows=500,cols=utf8:1"},
		{"builtin_echo", "rows=500,cols=utf8:1"},
		{"haversine_km", "rows=2000,cols=float64:4,batches=2"},
		{"sha256_hex", "rows=500,cols=utf8:1"},
		{"levenshtein", "rows=500,cols=utf8:2"},
		{"jaro_winkler", "rows=500,cols=utf8:2"},
		{"geohash_encode", "rows=500,cols=float64:2,int32:1"},
	} {
		rep := run(t, Config{Target: n.addr, Function: fn.name, Generate: fn.spec, Concurrency: 2,
			Duration: 200 * ms, RowsPerTask: 128, Verify: true})
		if rep.Failed != 0 || rep.Succeeded == 0 {
			t.Fatalf("%s: %d sent, %d failed: %v", fn.name, rep.Sent, rep.Failed, rep.ErrorSamples)
		}
		if rep.BadRows() != 0 || rep.VerifiedRows < rep.Rows || rep.Verify != "against the reference of "+fn.name {
			t.Fatalf("%s: verify %q: %d rows verified of %d, wrong %d, missing %d, duplicated %d (%s)", fn.name,
				rep.Verify, rep.VerifiedRows, rep.Rows, rep.WrongRows, rep.MissingRows, rep.DuplicatedRows, rep.VerifySample)
		}
	}
}

// TestVerifyFindsWrongAnswers checks identity's answers (the input) as if
// they were sha256_hex's, and levenshtein's as jaro_winkler's (another
// type): every row is wrong.
func TestVerifyFindsWrongAnswers(t *testing.T) {
	n := startNode(t, nil, nil)
	for _, c := range []struct{ fn, as string }{{"identity", "sha256_hex"}, {"levenshtein", "jaro_winkler"}} {
		spec := "rows=300,cols=utf8:2"
		if c.fn == "identity" {
			spec = "rows=300,cols=utf8:1"
		}
		rep := run(t, Config{Target: n.addr, Function: c.fn, Generate: spec, Duration: 100 * ms, Verify: true, VerifyAs: c.as})
		if rep.Succeeded == 0 || rep.WrongRows != rep.VerifiedRows || rep.VerifiedRows < rep.Rows || rep.VerifySample == "" {
			t.Fatalf("%s as %s: %d verified, %d wrong of %d rows (%s)", c.fn, c.as, rep.VerifiedRows, rep.WrongRows, rep.Rows, rep.VerifySample)
		}
		if rep.MissingRows != 0 || rep.DuplicatedRows != 0 {
			t.Fatalf("%s as %s: missing %d, duplicated %d", c.fn, c.as, rep.MissingRows, rep.DuplicatedRows)
		}
	}
}

func TestVerifyWithoutReference(t *testing.T) {
	n := startNode(t, nil, nil)
	rep := run(t, Config{Target: n.addr, Function: "my_python_udf", Generate: "rows=10,cols=int64:1", Duration: 50 * ms, Verify: true})
	if !strings.HasPrefix(rep.Verify, "not verified") || rep.VerifiedRows != 0 {
		t.Fatalf("verify %q, %d rows verified", rep.Verify, rep.VerifiedRows)
	}
	if _, err := Run(testCtx(t), Config{Target: n.addr, Function: "haversine_km", Generate: "rows=10,cols=int64:1",
		Duration: 50 * ms, Verify: true}); err == nil {
		t.Fatal("verifying haversine_km on int64 input: want an error before the run")
	}
}

// TestVerifyCountsRowsByPosition: an answer shorter than its input lacks
// rows, a longer one repeats some, and a stream that ended cleanly without
// an answer lost the whole batch.
func TestVerifyCountsRowsByPosition(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	batch := func(vals ...int64) arrow.RecordBatch {
		b := array.NewInt64Builder(mem)
		defer b.Release()
		b.AppendValues(vals, nil)
		col := b.NewArray()
		defer col.Release()
		return array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil),
			[]arrow.Array{col}, int64(len(vals)))
	}
	in := batch(1, 2, 3, 4)
	defer in.Release()
	build, _ := referenceFor("identity")
	e, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{in: &input{batches: []arrow.RecordBatch{in}, expect: []expectation{e}}}
	for _, out := range []arrow.RecordBatch{batch(1, 2, 3, 4), batch(1, 2), batch(1, 9, 3, 4, 4, 4)} {
		w.verify(in, 0, out, nil)
		out.Release()
	}
	w.verify(in, 0, nil, errNoResult)
	c := w.checks
	if c.verified != 4+2+4 || c.wrong != 1 || c.missing != 2+4 || c.duplicated != 2 {
		t.Fatalf("checks %+v: want 10 verified, 1 wrong, 6 missing, 2 duplicated", c)
	}
}
