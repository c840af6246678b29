// levenshtein(a, b): edit distance between two strings, over code points.
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

type levenshtein struct{}

var stringPairArgs = []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.String}

func (levenshtein) Name() string { return "levenshtein" }

func (levenshtein) Signature() Signature {
	return Signature{
		Args: []arrow.Field{
			{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
		},
		Result: arrow.Field{Name: "levenshtein", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		Doc:    "Levenshtein edit distance (insertions, deletions, substitutions) between a and b, counted in Unicode code points",
	}
}

func (levenshtein) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkTypes("levenshtein", stringPairArgs, args); err != nil {
		return nil, err
	}
	return arrow.PrimitiveTypes.Int32, nil
}

func (levenshtein) Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	var s levenshteinScratch
	return mapStringPairs(ctx, mem, "levenshtein", args, s.distance)
}

// stringPair returns the two utf8 arguments of a string-distance function and
// their common length.
func stringPair(name string, args []arrow.Array) (a, b *array.String, n int, err error) {
	if n, err = evalLen(name, 2, args); err != nil {
		return nil, nil, 0, err
	}
	if a, err = argAs[*array.String](name, args, 0, arrow.BinaryTypes.String); err != nil {
		return nil, nil, 0, err
	}
	if b, err = argAs[*array.String](name, args, 1, arrow.BinaryTypes.String); err != nil {
		return nil, nil, 0, err
	}
	return a, b, n, nil
}

// levenshteinScratch holds the buffers one Eval call reuses across rows.
type levenshteinScratch struct {
	runes     runeScratch
	prev, cur []int32
}

// distance returns the edit distance between a and b in code points, with a
// two-row dynamic programme after trimming the common prefix and suffix.
func (s *levenshteinScratch) distance(a, b string) int32 {
	if a == b {
		return 0
	}
	ra, rb := s.runes.decode(a, b)
	for len(ra) > 0 && len(rb) > 0 && ra[0] == rb[0] {
		ra, rb = ra[1:], rb[1:]
	}
	for len(ra) > 0 && len(rb) > 0 && ra[len(ra)-1] == rb[len(rb)-1] {
		ra, rb = ra[:len(ra)-1], rb[:len(rb)-1]
	}
	if len(ra) < len(rb) {
		ra, rb = rb, ra // the rows run along the shorter string
	}
	if len(rb) == 0 {
		return int32(len(ra))
	}
	if cap(s.prev) < len(rb)+1 {
		s.prev = make([]int32, len(rb)+1)
		s.cur = make([]int32, len(rb)+1)
	}
	prev, cur := s.prev[:len(rb)+1], s.cur[:len(rb)+1]
	for j := range prev {
		prev[j] = int32(j)
	}
	for i, ca := range ra {
		cur[0] = int32(i + 1)
		for j, cb := range rb {
			cost := prev[j] // substitution or match
			if ca != cb {
				cost++
			}
			cost = min(cost, prev[j+1]+1, cur[j]+1) // deletion, insertion
			cur[j+1] = cost
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
