// Running one spilled task on a peer: a DoExchange of one batch, its
// result decoded back into what a local task returns.
package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/scheduler"
)

// Run runs task t on the peer at addr as a DoExchange of its one batch
// (docs/protocol.md, "Peer calls"), the Run of scheduler.Remote. Its
// errors are the ones scheduler.Remote names: ErrPeerRefused when the peer
// refused, *scheduler.PeerFuncError when the function failed there, and
// the transport's error when the peer was lost.
func (p *PeerClient) Run(ctx context.Context, addr string, t scheduler.RemoteTask) (scheduler.RemoteResult, error) {
	c, err := p.conn(addr)
	if err != nil {
		return scheduler.RemoteResult{}, err
	}
	ctx, cancel := context.WithCancel(p.outgoing(ctx, p.spillHeaders(t)...))
	defer cancel()
	var trailer metadata.MD
	stream, err := c.client.DoExchange(ctx, grpc.Trailer(&trailer))
	if err != nil {
		return scheduler.RemoteResult{}, peerError(addr, err, trailer)
	}
	res, err := p.exchange(stream, t)
	if err != nil {
		return res, peerError(addr, err, trailer)
	}
	return res, nil
}

// exchange sends t's batch on stream and reads the one result batch.
func (p *PeerClient) exchange(stream flight.FlightService_DoExchangeClient, t scheduler.RemoteTask) (scheduler.RemoteResult, error) {
	var res scheduler.RemoteResult
	w := flight.NewRecordWriter(stream, ipc.WithSchema(t.Rec.Schema()), ipc.WithAllocator(p.cfg.Mem))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{t.Func.Name()}})
	werr := w.Write(t.Rec)
	if werr == nil {
		werr = w.Close()
	}
	if werr == nil {
		werr = stream.CloseSend()
	}
	// A write fails with io.EOF when the peer ended the call; its reason
	// comes with the read.
	if werr != nil && !errors.Is(werr, io.EOF) {
		return res, werr
	}
	rdr, err := flight.NewRecordReader(stream, ipc.WithAllocator(p.cfg.Mem))
	if err != nil {
		return res, err
	}
	defer rdr.Release()
	if !rdr.Next() {
		if err := rdr.Err(); err != nil {
			return res, err
		}
		return res, fmt.Errorf("%w: the peer answered no batch", scheduler.ErrBadResult)
	}
	if res, err = decodePeerResult(rdr.RecordBatch(), t); err != nil {
		return res, err
	}
	var info scheduler.BatchInfo
	if json.Unmarshal(rdr.LatestAppMetadata(), &info) == nil {
		res.Work = time.Duration(info.WorkMs * float64(time.Millisecond))
	}
	for rdr.Next() {
	}
	if err := rdr.Err(); err != nil {
		res.Col.Release()
		return scheduler.RemoteResult{}, err
	}
	return res, nil
}

// decodePeerResult takes a spilled call's output batch apart: the
// row-index column first for a table call, the values, the error column
// last under OnErrorNull.
func decodePeerResult(rec arrow.RecordBatch, t scheduler.RemoteTask) (scheduler.RemoteResult, error) {
	var res scheduler.RemoteResult
	want, col := 1, 0
	if t.Table {
		want, col = want+1, 1
	}
	if t.OnError == scheduler.OnErrorNull {
		want++
	}
	if int(rec.NumCols()) != want {
		return res, fmt.Errorf("%w: the peer answered %d columns, want %d", scheduler.ErrBadResult, rec.NumCols(), want)
	}
	if t.Table {
		idx, ok := rec.Column(0).(*array.Int32)
		if !ok || idx.NullN() > 0 {
			return res, fmt.Errorf("%w: the peer's row indices are %s with %d nulls, want int32 without", scheduler.ErrBadResult, rec.Column(0).DataType(), rec.Column(0).NullN())
		}
		res.Rows = append([]int32(nil), idx.Int32Values()...)
	}
	if t.OnError == scheduler.OnErrorNull {
		errs, ok := rec.Column(want - 1).(*array.String)
		if !ok {
			return res, fmt.Errorf("%w: the peer's error column is %s, want utf8", scheduler.ErrBadResult, rec.Column(want-1).DataType())
		}
		if errs.NullN() < errs.Len() {
			res.Errs = make([]string, errs.Len())
			for i := range res.Errs {
				if errs.IsValid(i) {
					res.Errs[i] = errs.Value(i)
				}
			}
		}
	}
	res.Col = rec.Column(col)
	res.Col.Retain()
	return res, nil
}

// ErrPeerUnreachable: the peer could not be reached or the connection to
// it broke (gRPC Unavailable). It comes wrapped with
// scheduler.ErrPeerLost; the node leaves such a peer out for a while.
var ErrPeerUnreachable = errors.New("flight: peer unreachable")

// peerError classifies a failed peer call for the scheduler: a function's
// own failure (the trailer says), a refusal, or a lost peer.
func peerError(addr string, err error, trailer metadata.MD) error {
	if msgs := trailer.Get(HeaderTaskError); len(msgs) > 0 {
		attempts, _ := strconv.Atoi(lastHeader(trailer, HeaderTaskAttempts))
		return &scheduler.PeerFuncError{Msg: msgs[len(msgs)-1], Attempts: attempts}
	}
	if errors.Is(err, scheduler.ErrBadResult) {
		return fmt.Errorf("peer %s: %w", addr, err)
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.ResourceExhausted, codes.Unauthenticated, codes.PermissionDenied, codes.NotFound,
		codes.InvalidArgument, codes.Unimplemented, codes.FailedPrecondition:
		return fmt.Errorf("%w: %s: %s", scheduler.ErrPeerRefused, addr, st.Message())
	case codes.Unavailable:
		return fmt.Errorf("%w %s: %w: %s", scheduler.ErrPeerLost, addr, ErrPeerUnreachable, st.Message())
	}
	return fmt.Errorf("%w %s: %v", scheduler.ErrPeerLost, addr, err)
}
