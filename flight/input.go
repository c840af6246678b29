// Client IPC input: every message checked (internal/ipccheck) before
// arrow-go reads it, and the reader's memory bounded.
package flight

import (
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/ipccheck"
)

// openInput reads a client's stream up to its schema. Every message is
// checked before the IPC reader sees it, and the reader holds at most
// budget bytes of s.cfg.Mem at once. want says what a client must send
// first, for one whose stream ends before a schema.
func (s *Server) openInput(stream flight.DataStreamReader, budget int64, want string) (rdr *flight.Reader, err error) {
	defer func() {
		if r := recover(); r != nil {
			rdr, err = nil, fmt.Errorf("%w: reading the schema: %v", errMalformed, r)
		}
	}()
	in := &checkedStream{DataStreamReader: stream, chk: ipccheck.Checker{MaxBody: s.cfg.MaxMessageBytes}}
	rdr, err = flight.NewRecordReader(in, ipc.WithAllocator(ipccheck.NewBudget(s.cfg.Mem, budget)))
	switch {
	case err == nil:
		return rdr, nil
	case errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: the stream ended before a schema; send %s", errMalformed, want)
	case isStreamEnd(err):
		return nil, err
	}
	return nil, fmt.Errorf("%w: reading the schema: %v", errMalformed, err)
}

// checkedStream checks every message's header with an ipccheck.Checker
// before the IPC reader sees it, and cuts the capacity of its byte slices
// to their length: arrow-go slices bodies up to their capacity.
type checkedStream struct {
	flight.DataStreamReader
	chk ipccheck.Checker
}

func (s *checkedStream) Recv() (*flight.FlightData, error) {
	fd, err := s.DataStreamReader.Recv()
	if err != nil || len(fd.DataHeader) == 0 {
		return fd, err
	}
	fd.DataHeader = fd.DataHeader[:len(fd.DataHeader):len(fd.DataHeader)]
	fd.DataBody = fd.DataBody[:len(fd.DataBody):len(fd.DataBody)]
	if err := s.chk.Check(fd.DataHeader, fd.DataBody); err != nil {
		return nil, fmt.Errorf("%w: IPC message header: %v", errMalformed, err)
	}
	return fd, nil
}

// isStreamEnd reports whether err came from the transport (the client went
// away, the call was cancelled) rather than from the bytes it sent.
func isStreamEnd(err error) bool {
	_, ok := status.FromError(err)
	return ok
}
