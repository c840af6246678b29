// Generated input: batches from a spec such as rows=10000,cols=float64:4.
package loadtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Spec describes generated batches: Batches distinct batches of Rows rows,
// whose columns are Cols in order, from a random generator seeded with
// Seed. ParseSpec reads it from text.
type Spec struct {
	Rows    int
	Cols    []ColGroup
	Seed    uint64
	Batches int
}

// ColGroup is N columns of one type.
type ColGroup struct {
	Type string // one of ColumnTypes
	N    int
}

// ColumnTypes are the types a spec can generate, and what values they get.
var ColumnTypes = map[string]string{
	"int64":   "uniform over all int64 values",
	"int32":   "uniform in 1..12 (a geohash precision)",
	"float64": "uniform in [-90, 90)",
	"utf8":    "a random English word",
	"bool":    "true or false, even odds",
}

// maxSpecValues bounds rows x columns x batches of a spec (memory).
const maxSpecValues = 1 << 28

// ParseSpec reads a spec: comma-separated key=value pairs among
//
//	rows=N          rows per batch (default 10000)
//	cols=T:N,...    N columns of type T, groups in order (required); the
//	                groups continue after commas until the next key
//	seed=N          random seed (default 1)
//	batches=N       distinct batches, sent in turn (default 1)
//
// e.g. rows=10000,cols=float64:2,int64:1,seed=7.
func ParseSpec(s string) (Spec, error) {
	sp := Spec{Rows: 10000, Seed: 1, Batches: 1}
	if strings.TrimSpace(s) == "" {
		return sp, errors.New("generate spec is empty: want e.g. rows=10000,cols=float64:4")
	}
	key := ""
	seen := map[string]bool{}
	for _, tok := range strings.Split(s, ",") {
		tok = strings.TrimSpace(tok)
		k, v, hasEq := strings.Cut(tok, "=")
		if !hasEq {
			if key != "cols" {
				return sp, fmt.Errorf("generate spec: %q is not key=value (keys: rows, cols, seed, batches)", tok)
			}
			k, v = "cols", tok // another column group
		} else {
			k = strings.TrimSpace(k)
			if seen[k] {
				return sp, fmt.Errorf("generate spec: %s given twice", k)
			}
			seen[k] = true
		}
		key = k
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "rows":
			sp.Rows, err = positive(k, v, true)
		case "batches":
			sp.Batches, err = positive(k, v, false)
		case "seed":
			sp.Seed, err = strconv.ParseUint(v, 10, 64)
			if err != nil {
				err = fmt.Errorf("generate spec: seed=%s: want a non-negative integer", v)
			}
		case "cols":
			var g ColGroup
			g, err = parseGroup(v)
			sp.Cols = append(sp.Cols, g)
		default:
			err = fmt.Errorf("generate spec: unknown key %q (keys: rows, cols, seed, batches)", k)
		}
		if err != nil {
			return sp, err
		}
	}
	if len(sp.Cols) == 0 {
		return sp, errors.New("generate spec: no columns: add cols=TYPE:N, e.g. cols=float64:4")
	}
	if n := int64(sp.Rows) * int64(sp.Columns()) * int64(sp.Batches); n > maxSpecValues {
		return sp, fmt.Errorf("generate spec: %d values in all (rows x columns x batches) is more than %d", n, maxSpecValues)
	}
	return sp, nil
}

func positive(k, v string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || (n == 0 && !zeroOK) {
		want := "a positive integer"
		if zeroOK {
			want = "an integer >= 0"
		}
		return 0, fmt.Errorf("generate spec: %s=%s: want %s", k, v, want)
	}
	return n, nil
}

func parseGroup(v string) (ColGroup, error) {
	t, n, ok := strings.Cut(v, ":")
	if !ok {
		return ColGroup{}, fmt.Errorf("generate spec: column group %q: want TYPE:N, e.g. float64:4", v)
	}
	if _, known := ColumnTypes[t]; !known {
		return ColGroup{}, fmt.Errorf("generate spec: column type %q: want one of int64, int32, float64, utf8, bool", t)
	}
	c, err := strconv.Atoi(n)
	if err != nil || c < 1 || c > 1000 {
		return ColGroup{}, fmt.Errorf("generate spec: column group %q: the count must be 1..1000", v)
	}
	return ColGroup{Type: t, N: c}, nil
}

// Columns is the number of columns.
func (s Spec) Columns() int {
	n := 0
	for _, g := range s.Cols {
		n += g.N
	}
	return n
}

// String is the spec in the form ParseSpec reads.
func (s Spec) String() string {
	var groups []string
	for _, g := range s.Cols {
		groups = append(groups, fmt.Sprintf("%s:%d", g.Type, g.N))
	}
	return fmt.Sprintf("rows=%d,cols=%s,seed=%d,batches=%d", s.Rows, strings.Join(groups, ","), s.Seed, s.Batches)
}

// Schema is the generated batches' schema: columns c0, c1, ... nullable.
func (s Spec) Schema() *arrow.Schema {
	var fields []arrow.Field
	for _, g := range s.Cols {
		for i := 0; i < g.N; i++ {
			fields = append(fields, arrow.Field{Name: fmt.Sprintf("c%d", len(fields)), Type: columnType(g.Type), Nullable: true})
		}
	}
	return arrow.NewSchema(fields, nil)
}

func columnType(t string) arrow.DataType {
	switch t {
	case "int64":
		return arrow.PrimitiveTypes.Int64
	case "int32":
		return arrow.PrimitiveTypes.Int32
	case "float64":
		return arrow.PrimitiveTypes.Float64
	case "utf8":
		return arrow.BinaryTypes.String
	}
	return arrow.FixedWidthTypes.Boolean
}

// Generate makes the spec's batches; the same spec gives the same values.
// The caller releases them.
func (s Spec) Generate(mem memory.Allocator) []arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(s.Seed, 0x9e3779b97f4a7c15))
	schema := s.Schema()
	out := make([]arrow.RecordBatch, 0, s.Batches)
	for b := 0; b < s.Batches; b++ {
		rb := array.NewRecordBuilder(mem, schema)
		for i, f := range schema.Fields() {
			fill(rb.Field(i), f.Type, s.Rows, rng)
		}
		out = append(out, rb.NewRecordBatch())
		rb.Release()
	}
	return out
}

func fill(b array.Builder, t arrow.DataType, rows int, rng *rand.Rand) {
	b.Reserve(rows)
	switch b := b.(type) {
	case *array.Int64Builder:
		for i := 0; i < rows; i++ {
			b.UnsafeAppend(int64(rng.Uint64()))
		}
	case *array.Int32Builder:
		for i := 0; i < rows; i++ {
			b.UnsafeAppend(int32(1 + rng.IntN(12)))
		}
	case *array.Float64Builder:
		for i := 0; i < rows; i++ {
			b.UnsafeAppend(rng.Float64()*180 - 90)
		}
	case *array.BooleanBuilder:
		for i := 0; i < rows; i++ {
			b.UnsafeAppend(rng.IntN(2) == 1)
		}
	case *array.StringBuilder:
		for i := 0; i < rows; i++ {
			b.Append(words[rng.IntN(len(words))])
		}
	default:
		panic(fmt.Sprintf("loadtest: no generator for %s", t))
	}
}

// words are the values of utf8 columns.
var words = strings.Fields(`the of and to in is you that it he was for on are as with his they at be
this have from or one had by word but not what all were we when your can said there use an each which
she do how their if will up other about out many then them these so some her would make like him into
time has look two more write go see number no way could people my than first water been call who oil
its now find long down day did get come made may part over new sound take only little work know place
year live me back give most very after thing our just name good sentence man think say great where help
through much before line right too mean old any same tell boy follow came want show also around form
three small set put end does another well large must big even such because turn here why ask went men
read need land different home us move try kind hand picture again change off play spell air away animal
house point page letter mother answer found study still learn should america world straße café naïve`)
