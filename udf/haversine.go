// haversine_km(lat1, lon1, lat2, lon2): great-circle distance in kilometres.
package udf

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// earthRadiusKm is the mean earth radius the haversine formula uses.
const earthRadiusKm = 6371.0

type haversineKm struct{}

var haversineArgs = []arrow.DataType{
	arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float64,
	arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float64,
}

func (haversineKm) Name() string { return "haversine_km" }

func (haversineKm) Signature() Signature {
	f := func(name string) arrow.Field {
		return arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	return Signature{
		Args:   []arrow.Field{f("lat1"), f("lon1"), f("lat2"), f("lon2")},
		Result: f("haversine_km"),
		Doc:    "great-circle distance in km between two points given in degrees (earth radius 6371 km); NaN in gives NaN out",
	}
}

func (haversineKm) Bind(args []arrow.DataType) (arrow.DataType, error) {
	if err := checkTypes("haversine_km", haversineArgs, args); err != nil {
		return nil, err
	}
	return arrow.PrimitiveTypes.Float64, nil
}

// Eval computes every row from the raw values, null rows included (their
// values are ignored), and takes the result's validity from the arguments'.
func (haversineKm) Eval(_ context.Context, mem memory.Allocator, args []arrow.Array) (arrow.Array, error) {
	n, err := evalLen("haversine_km", 4, args)
	if err != nil {
		return nil, err
	}
	var in [4][]float64
	for i := range in {
		a, err := argAs[*array.Float64]("haversine_km", args, i, arrow.PrimitiveTypes.Float64)
		if err != nil {
			return nil, err
		}
		in[i] = a.Float64Values()
	}
	validity, nulls := andValidity(mem, n, args...)
	values := newValues(mem, n, arrow.Float64SizeBytes)
	haversineRows(arrow.Float64Traits.CastFromBytes(values.Bytes())[:n], in[0], in[1], in[2], in[3])
	return fixedResult(arrow.PrimitiveTypes.Float64, n, validity, nulls, values), nil
}

// haversineRows writes the distance of row i into out[i]. All slices have
// len(out) elements.
func haversineRows(out, lat1, lon1, lat2, lon2 []float64) {
	const rad = math.Pi / 180
	lat1, lon1, lat2, lon2 = lat1[:len(out)], lon1[:len(out)], lat2[:len(out)], lon2[:len(out)]
	for i := range out {
		p1, p2 := lat1[i]*rad, lat2[i]*rad
		sdlat := math.Sin((p2 - p1) / 2)
		sdlon := math.Sin((lon2[i] - lon1[i]) * rad / 2)
		h := sdlat*sdlat + math.Cos(p1)*math.Cos(p2)*sdlon*sdlon
		// Rounding can push h just past 1 for antipodal points; min keeps NaN.
		out[i] = 2 * earthRadiusKm * math.Asin(math.Sqrt(min(h, 1)))
	}
}
