// Tests of the generator: specs that parse, specs that do not (and say
// why), and what Generate makes.
package loadtest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestParseSpec(t *testing.T) {
	for in, want := range map[string]string{
		"rows=10000,cols=float64:4":                   "rows=10000,cols=float64:4,seed=1,batches=1",
		"cols=float64:2,int64:1":                      "rows=10000,cols=float64:2,int64:1,seed=1,batches=1",
		"cols=float64:2,int64:1,seed=7,rows=3":        "rows=3,cols=float64:2,int64:1,seed=7,batches=1",
		" rows = 5 , cols = utf8:1 , bool:2 ":         "rows=5,cols=utf8:1,bool:2,seed=1,batches=1",
		"cols=int32:1,batches=4,rows=0":               "rows=0,cols=int32:1,seed=1,batches=4",
		"rows=1,cols=utf8:1,seed=0,cols=float64:1":    "", // cols twice
		"rows=10000,cols=float64:4,int64:1,batches=2": "rows=10000,cols=float64:4,int64:1,seed=1,batches=2",
	} {
		sp, err := ParseSpec(in)
		if want == "" {
			if err == nil {
				t.Errorf("ParseSpec(%q) passed", in)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", in, err)
			continue
		}
		if got := sp.String(); got != want {
			t.Errorf("ParseSpec(%q) = %s, want %s", in, got, want)
		}
		if again, err := ParseSpec(sp.String()); err != nil || again.String() != want {
			t.Errorf("String does not parse back: %q: %v", sp.String(), err)
		}
	}
}

// TestParseSpecErrors: every bad spec fails, and the message names what is
// wrong so that a person can fix it.
func TestParseSpecErrors(t *testing.T) {
	for in, mentions := range map[string]string{
		"":                          "empty",
		"rows=10":                   "cols=TYPE:N",
		"rows=abc,cols=int64:1":     "rows=abc",
		"rows=-1,cols=int64:1":      "rows=-1",
		"cols=float32:2":            `"float32"`,
		"cols=float64":              "TYPE:N",
		"cols=float64:0":            `"float64:0"`,
		"cols=float64:x":            `"float64:x"`,
		"cols=int64:1,color=red":    `"color"`,
		"rows=5,int64:1":            `"int64:1"`,
		"cols=int64:1,seed=-3":      "seed=-3",
		"cols=int64:1,batches=0":    "batches=0",
		"rows=5,rows=6,cols=bool:1": "rows given twice",
		"rows=100000000,cols=int64:1000,batches=1000": "values",
	} {
		_, err := ParseSpec(in)
		if err == nil {
			t.Errorf("ParseSpec(%q) passed", in)
			continue
		}
		if !strings.Contains(err.Error(), mentions) {
			t.Errorf("ParseSpec(%q): %q does not mention %s", in, err, mentions)
		}
	}
}

func TestGenerate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	sp, err := ParseSpec("rows=500,cols=float64:2,int64:1,utf8:1,bool:1,int32:1,batches=3,seed=9")
	if err != nil {
		t.Fatal(err)
	}
	encode := func(s Spec) [][]byte {
		var out [][]byte
		for _, rec := range s.Generate(mem) {
			var buf bytes.Buffer
			w := ipc.NewWriter(&buf, ipc.WithSchema(rec.Schema()))
			if err := w.Write(rec); err != nil {
				t.Fatal(err)
			}
			w.Close()
			if rec.NumRows() != 500 || rec.NumCols() != 6 {
				t.Fatalf("batch of %d rows and %d columns", rec.NumRows(), rec.NumCols())
			}
			rec.Release()
			out = append(out, buf.Bytes())
		}
		return out
	}
	want := []arrow.DataType{arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int64,
		arrow.BinaryTypes.String, arrow.FixedWidthTypes.Boolean, arrow.PrimitiveTypes.Int32}
	for i, f := range sp.Schema().Fields() {
		if !arrow.TypeEqual(f.Type, want[i]) {
			t.Fatalf("column %d is %s, want %s", i, f.Type, want[i])
		}
	}
	a, b := encode(sp), encode(sp)
	if len(a) != 3 || !bytes.Equal(a[0], b[0]) || !bytes.Equal(a[2], b[2]) {
		t.Fatal("one seed gave different batches")
	}
	if bytes.Equal(a[0], a[1]) {
		t.Fatal("the batches of a spec are all the same")
	}
	sp.Seed = 10
	if bytes.Equal(encode(sp)[0], a[0]) {
		t.Fatal("another seed gave the same batch")
	}
}
