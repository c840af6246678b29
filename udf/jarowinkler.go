// jaro_winkler(a, b): Jaro-Winkler similarity of two strings, over code points.
package udf

import (
	"context"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

const (
	// jaroWinklerScale is the Winkler prefix scale p.
	jaroWinklerScale = 0.1
	// jaroWinklerMaxPrefix is the longest common prefix the boost counts.
	jaroWinklerMaxPrefix = 4
)

type jaroWinkler struct{}

func (jaroWinkler) Name() string { return "jaro_winkler" }

func (jaroWinkler) Signature() Signature {
	return Signature{
		Args: []arrow.Field{
			{Name: "a", Type: arrow.BinaryTypes.String, Nullable: true},
			{Name: "b", Type: arrow.BinaryTypes.String, Nullable: true},
		},
		Result: arrow.Field{Name: "jaro_winkler", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
		Doc:    "Jaro-Winkler similarity in [0, 1] over code points: jaro + l*0.1*(1-jaro), common prefix l <= 4, boost always applied; two empty strings give 1",
	}
}

func (jaroWinkler) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkTypes("jaro_winkler", stringPairArgs, args); err != nil {
		return nil, err
	}
	return arrow.PrimitiveTypes.Float64, nil
}

func (jaroWinkler) Eval(ctx context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	var s jaroScratch
	return mapStringPairs(ctx, mem, "jaro_winkler", args, s.similarity)
}

// jaroScratch holds the buffers one Eval call reuses across rows.
type jaroScratch struct {
	runes              runeScratch
	matchedA, matchedB []bool
}

// similarity returns the Jaro-Winkler similarity of a and b.
func (s *jaroScratch) similarity(a, b string) float64 {
	if a == b {
		return 1
	}
	ra, rb := s.runes.decode(a, b)
	if len(ra) == 0 || len(rb) == 0 {
		return 0
	}
	j := s.jaro(ra, rb)
	l := 0
	for l < jaroWinklerMaxPrefix && l < len(ra) && l < len(rb) && ra[l] == rb[l] {
		l++
	}
	return j + float64(l)*jaroWinklerScale*(1-j)
}

// jaro returns the Jaro similarity of two non-empty code-point strings:
// characters match when equal and at most max(len)/2-1 positions apart, and
// t is half the matched characters that are out of order.
func (s *jaroScratch) jaro(a, b []rune) float64 {
	window := max(max(len(a), len(b))/2-1, 0)
	ma, mb := grow(s.matchedA, len(a)), grow(s.matchedB, len(b))
	s.matchedA, s.matchedB = ma, mb
	m := 0
	for i, ca := range a {
		for k := max(0, i-window); k < min(len(b), i+window+1); k++ {
			if !mb[k] && b[k] == ca {
				ma[i], mb[k] = true, true
				m++
				break
			}
		}
	}
	if m == 0 {
		return 0
	}
	outOfOrder, k := 0, 0
	for i, ca := range a {
		if !ma[i] {
			continue
		}
		for !mb[k] {
			k++
		}
		if b[k] != ca {
			outOfOrder++
		}
		k++
	}
	fm := float64(m)
	t := float64(outOfOrder) / 2
	return (fm/float64(len(a)) + fm/float64(len(b)) + (fm-t)/fm) / 3
}

// grow returns buf resized to n elements, all false.
func grow(buf []bool, n int) []bool {
	if cap(buf) < n {
		return make([]bool, n)
	}
	buf = buf[:n]
	clear(buf)
	return buf
}
