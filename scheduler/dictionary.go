// Dictionary-encoded arguments: native kernels that take plain arrays see
// the decoded values.
package scheduler

import (
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/udf"
)

// bindDecoded binds fn to the input's types. When fn refuses them and some
// columns are dictionary-encoded (dictionary<K, V>), a native kernel binds
// to V in their place and the call decodes those columns once per batch;
// decode says so. Python functions (udf.Costed) and functions that take
// the dictionary as it is (identity) get the columns as they came.
func bindDecoded(fn udf.Func, in *arrow.Schema) (out arrow.DataType, decode bool, err error) {
	types := make([]arrow.DataType, in.NumFields())
	decoded := make([]arrow.DataType, in.NumFields())
	for i, f := range in.Fields() {
		types[i], decoded[i] = f.Type, f.Type
		if d, ok := f.Type.(*arrow.DictionaryType); ok {
			decoded[i], decode = d.ValueType, true
		}
	}
	out, err = fn.Bind(types)
	if _, python := fn.(udf.Costed); err == nil || !decode || python {
		return out, false, err
	}
	out, err = fn.Bind(decoded)
	return out, err == nil, err
}

// decodeDictionaries returns rec with its dictionary columns replaced by
// their values. It takes rec's reference: the result is the caller's to
// release, and rec is released on error too.
func decodeDictionaries(mem memory.Allocator, rec arrow.RecordBatch) (arrow.RecordBatch, error) {
	defer rec.Release()
	cols := make([]arrow.Array, rec.NumCols())
	fields := make([]arrow.Field, rec.NumCols())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i, col := range rec.Columns() {
		fields[i] = rec.Schema().Field(i)
		d, ok := col.(*array.Dictionary)
		if !ok {
			col.Retain()
			cols[i] = col
			continue
		}
		values, err := decode(mem, d)
		if err != nil {
			return nil, udf.Invalidf("argument %d: cannot decode %s: %v", i, col.DataType(), err)
		}
		cols[i] = values
		fields[i].Type = values.DataType()
	}
	return array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, rec.NumRows()), nil
}

// decode materializes a dictionary array: row i is the dictionary's value
// at index i, null where the index or that value is null.
func decode(mem memory.Allocator, d *array.Dictionary) (arrow.Array, error) {
	dict := d.Dictionary()
	b := array.NewBuilder(mem, dict.DataType())
	defer b.Release()
	b.Reserve(d.Len())
	for i := 0; i < d.Len(); i++ {
		if d.IsNull(i) {
			b.AppendNull()
			continue
		}
		k := d.GetValueIndex(i)
		if dict.IsNull(k) {
			b.AppendNull()
			continue
		}
		if err := appendValue(b, dict, k); err != nil {
			return nil, err
		}
	}
	return b.NewArray(), nil
}

// appendValue appends src's value k to b, a builder of src's type.
func appendValue(b array.Builder, src arrow.Array, k int) error {
	switch s := src.(type) {
	case *array.String:
		b.(*array.StringBuilder).Append(s.Value(k))
	case *array.LargeString:
		b.(*array.LargeStringBuilder).Append(s.Value(k))
	case *array.Binary:
		b.(*array.BinaryBuilder).Append(s.Value(k))
	case *array.LargeBinary:
		b.(*array.BinaryBuilder).Append(s.Value(k))
	case *array.Float64:
		b.(*array.Float64Builder).Append(s.Value(k))
	case *array.Float32:
		b.(*array.Float32Builder).Append(s.Value(k))
	case *array.Int64:
		b.(*array.Int64Builder).Append(s.Value(k))
	case *array.Int32:
		b.(*array.Int32Builder).Append(s.Value(k))
	default: // every other type round-trips through its value string
		return b.AppendValueFromString(src.ValueStr(k))
	}
	return nil
}
