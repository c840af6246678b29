// geohash_encode(lat, lon, precision): the base-32 geohash of a point.
package udf

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// geohashAlphabet is the standard geohash base-32 alphabet.
const geohashAlphabet = "0123456789bcdefghjkmnpqrstuvwxyz"

// geohashMaxPrecision is the longest geohash the function makes: 60 bits,
// about 3.7 cm by 1.9 cm.
const geohashMaxPrecision = 12

type geohashEncode struct{}

var geohashArgs = []arrow.DataType{
	arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Int32,
}

func (geohashEncode) Name() string { return "geohash_encode" }

func (geohashEncode) Signature() Signature {
	return Signature{
		Args: []arrow.Field{
			{Name: "lat", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			{Name: "lon", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
			{Name: "precision", Type: arrow.PrimitiveTypes.Int32, Nullable: true},
		},
		Result: arrow.Field{Name: "geohash_encode", Type: arrow.BinaryTypes.String, Nullable: true},
		Doc:    "base-32 geohash of (lat, lon) in degrees with precision 1..12 characters; an out-of-range or NaN value fails the call",
	}
}

func (geohashEncode) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkTypes("geohash_encode", geohashArgs, args); err != nil {
		return nil, err
	}
	return arrow.BinaryTypes.String, nil
}

// Eval checks every non-null row before it allocates anything: a value out
// of range fails the whole call with an error naming the row (counted from
// the start of the arrays Eval got) and the value.
func (geohashEncode) Eval(_ context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	n, err := evalLen("geohash_encode", 3, args)
	if err != nil {
		return nil, err
	}
	latA, err := argAs[*array.Float64]("geohash_encode", args, 0, arrow.PrimitiveTypes.Float64)
	if err != nil {
		return nil, err
	}
	lonA, err := argAs[*array.Float64]("geohash_encode", args, 1, arrow.PrimitiveTypes.Float64)
	if err != nil {
		return nil, err
	}
	precA, err := argAs[*array.Int32]("geohash_encode", args, 2, arrow.PrimitiveTypes.Int32)
	if err != nil {
		return nil, err
	}
	lats, lons, precs := latA.Float64Values(), lonA.Float64Values(), precA.Int32Values()
	anyNull := latA.NullN()+lonA.NullN()+precA.NullN() > 0
	isNull := func(i int) bool {
		return anyNull && (latA.IsNull(i) || lonA.IsNull(i) || precA.IsNull(i))
	}

	bytes := 0
	for i := 0; i < n; i++ {
		if isNull(i) {
			continue
		}
		if err := geohashCheck(i, lats[i], lons[i], precs[i]); err != nil {
			return nil, err
		}
		bytes += int(precs[i])
	}

	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(n)
	b.ReserveData(bytes)
	var buf [geohashMaxPrecision]byte
	for i := 0; i < n; i++ {
		if isNull(i) {
			b.AppendNull()
			continue
		}
		b.BinaryBuilder.Append(geohash(buf[:precs[i]], lats[i], lons[i]))
	}
	return b.NewArray(), nil
}

// geohashCheck returns an ErrInvalidArgument for a row geohash cannot encode.
func geohashCheck(row int, lat, lon float64, precision int32) error {
	switch {
	case precision < 1 || precision > geohashMaxPrecision:
		return Invalidf("geohash_encode: row %d: precision %d outside 1..%d", row, precision, geohashMaxPrecision)
	case math.IsNaN(lat) || lat < -90 || lat > 90:
		return Invalidf("geohash_encode: row %d: lat %v outside [-90, 90]", row, lat)
	case math.IsNaN(lon) || lon < -180 || lon > 180:
		return Invalidf("geohash_encode: row %d: lon %v outside [-180, 180]", row, lon)
	}
	return nil
}

// geohash fills dst with the geohash of (lat, lon), len(dst) characters,
// by bisecting the longitude and latitude ranges in turn, longitude first.
// A point on a cell's lower edge belongs to that cell; the upper bounds 90
// and 180 belong to the last cell.
func geohash(dst []byte, lat, lon float64) []byte {
	latLo, latHi := -90.0, 90.0
	lonLo, lonHi := -180.0, 180.0
	even := true // the next bit is a longitude bit
	for i := range dst {
		var c byte
		for bit := 0; bit < 5; bit++ {
			c <<= 1
			if even {
				if mid := (lonLo + lonHi) / 2; lon >= mid {
					c |= 1
					lonLo = mid
				} else {
					lonHi = mid
				}
			} else {
				if mid := (latLo + latHi) / 2; lat >= mid {
					c |= 1
					latLo = mid
				} else {
					latHi = mid
				}
			}
			even = !even
		}
		dst[i] = geohashAlphabet[c]
	}
	return dst
}
