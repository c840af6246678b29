// sha256_hex(x): lower-case hex SHA-256 of a string's or binary's bytes.
package udf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// sha256HexLen is the length of one result: two hex digits per digest byte.
const sha256HexLen = 2 * sha256.Size

type sha256Hex struct{}

func (sha256Hex) Name() string { return "sha256_hex" }

func (sha256Hex) Signature() Signature {
	return Signature{
		Args:   []arrow.Field{{Name: "x", Type: arrow.BinaryTypes.String, Nullable: true}},
		Result: arrow.Field{Name: "sha256_hex", Type: arrow.BinaryTypes.String, Nullable: true},
		Doc:    "lower-case hex SHA-256 of the bytes of x; x may be utf8, binary, large_utf8 or large_binary",
	}
}

func (sha256Hex) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkArity("sha256_hex", 1, args); err != nil {
		return nil, err
	}
	switch args[0].ID() {
	case arrow.STRING, arrow.BINARY, arrow.LARGE_STRING, arrow.LARGE_BINARY:
		return arrow.BinaryTypes.String, nil
	}
	return nil, &ArgError{Func: "sha256_hex", Pos: 0, Expected: "utf8 | binary", Got: args[0]}
}

func (sha256Hex) Eval(_ context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	n, err := evalLen("sha256_hex", 1, args)
	if err != nil {
		return nil, err
	}
	if _, err := (sha256Hex{}).Bind([]arrow.DataType{args[0].DataType()}); err != nil {
		return nil, err
	}
	b := array.NewStringBuilder(mem)
	defer b.Release()
	if n == 0 {
		// An empty array may have no offsets buffer at all.
		return b.NewArray(), nil
	}
	b.Reserve(n)
	b.ReserveData(sha256HexLen * (n - args[0].NullN()))
	switch a := args[0].(type) {
	case *array.String:
		sha256Rows(b, a, a.ValueBytes(), a.ValueOffsets())
	case *array.Binary:
		sha256Rows(b, a, a.ValueBytes(), a.ValueOffsets())
	case *array.LargeString:
		sha256Rows(b, a, a.ValueBytes(), a.ValueOffsets())
	case *array.LargeBinary:
		sha256Rows(b, a, a.ValueBytes(), a.ValueOffsets())
	default:
		return nil, &ArgError{Func: "sha256_hex", Pos: 0, Expected: "utf8 | binary", Got: a.DataType()}
	}
	return b.NewArray(), nil
}

// sha256Rows appends the digest of every row of a to b. data and offsets are
// a's ValueBytes and ValueOffsets: the offsets are into the whole values
// buffer while data starts at offsets[0], so a slice at any offset works.
func sha256Rows[O int32 | int64](b *array.StringBuilder, a arrow.Array, data []byte, offsets []O) {
	var out [sha256HexLen]byte
	base := offsets[0]
	for i := 0; i < a.Len(); i++ {
		if a.IsNull(i) {
			b.AppendNull()
			continue
		}
		sum := sha256.Sum256(data[offsets[i]-base : offsets[i+1]-base])
		hex.Encode(out[:], sum[:])
		b.BinaryBuilder.Append(out[:])
	}
}
