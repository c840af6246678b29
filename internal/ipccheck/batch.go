// Structural checks of decoded record batches, so that malformed input
// fails its call instead of crashing the node or a kernel.
package ipccheck

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Batch checks every column of rec: its length, that its buffers cover
// its rows (recursively), and the array's own full validation.
func Batch(rec arrow.RecordBatch) error {
	for i, col := range rec.Columns() {
		if int64(col.Len()) != rec.NumRows() {
			return fmt.Errorf("column %d has %d rows, the batch %d", i, col.Len(), rec.NumRows())
		}
		if err := validateData(col.Data()); err != nil {
			return fmt.Errorf("column %d (%s): %w", i, col.DataType(), err)
		}
	}
	return nil
}

// validateData checks that the buffers of d cover its rows, recursively,
// then runs the array's own full validation where it has one.
func validateData(d arrow.ArrayData) error {
	if d.Len() < 0 || d.Offset() < 0 {
		return fmt.Errorf("negative length or offset")
	}
	end := int64(d.Offset()) + int64(d.Len())
	bufs := d.Buffers()
	if len(bufs) > 0 && bufs[0] != nil && d.NullN() != 0 && int64(bufs[0].Len())*8 < end {
		return fmt.Errorf("validity bitmap of %d bytes for %d rows", bufs[0].Len(), end)
	}
	if fw, ok := d.DataType().(arrow.FixedWidthDataType); ok && len(bufs) > 1 && d.DataType().ID() != arrow.DICTIONARY {
		need := (end*int64(fw.BitWidth()) + 7) / 8
		have := int64(0)
		if bufs[1] != nil {
			have = int64(bufs[1].Len())
		}
		if have < need {
			return fmt.Errorf("data buffer of %d bytes, %d needed", have, need)
		}
	}
	for i, c := range d.Children() {
		if err := validateData(c); err != nil {
			return fmt.Errorf("child %d: %w", i, err)
		}
	}
	arr := array.MakeFromData(d)
	defer arr.Release()
	if v, ok := arr.(interface{ ValidateFull() error }); ok {
		return v.ValidateFull()
	}
	if v, ok := arr.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}
