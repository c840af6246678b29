// Input stream reader: IPC batches from the client, checked before use.
package flight

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"

	"github.com/quiver-udf/quiver/internal/ipccheck"
	"github.com/quiver-udf/quiver/internal/record"
)

// source adapts a Flight record reader to scheduler.Source. Every batch is
// validated: a malformed body is an error for the call, never a panic.
// Valid batches are offered to the call's recording, if any.
type source struct {
	rdr *flight.Reader
	n   int
	rec *record.Call // nil: not recording
}

func (s *source) Next() (rec arrow.RecordBatch, err error) {
	defer func() {
		if r := recover(); r != nil {
			rec, err = nil, fmt.Errorf("%w: batch %d: %v", errMalformed, s.n, r)
		}
	}()
	if !s.rdr.Next() {
		if err := s.rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
			if isStreamEnd(err) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: batch %d: %v", errMalformed, s.n, err)
		}
		return nil, io.EOF
	}
	rec = s.rdr.RecordBatch()
	if err := ipccheck.Batch(rec); err != nil {
		return nil, fmt.Errorf("%w: batch %d: %v", errMalformed, s.n, err)
	}
	s.n++
	s.rec.Offer(rec)
	rec.Retain()
	return rec, nil
}

func (s *source) Close() {
	s.rec.Close()
	s.rdr.Release()
}
