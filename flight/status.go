// The one place where errors become gRPC status codes.
package flight

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/objectstore"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

var (
	// errMalformed: the input is not a valid Arrow IPC stream or descriptor.
	errMalformed = errors.New("malformed input")
	// errDraining: the node is shutting down and takes no new calls.
	errDraining = errors.New("node is draining: retry on another node or after restart")
	// errUnauthenticated: a token is required and was missing or wrong.
	errUnauthenticated = errors.New("missing or bad token: send header authorization: Bearer <token>")
	// errNoPeerCert: a peer call came without a client certificate the
	// cluster's CA signed.
	errNoPeerCert = errors.New("peer calls need a client certificate signed by the cluster's CA (quiver start --tls-ca)")
	// errUnknownAction: DoAction with a type the node does not serve.
	errUnknownAction = errors.New("unknown action")
)

// codeOf classifies err.
func codeOf(err error) codes.Code {
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	switch {
	case errors.Is(err, udf.ErrUnknownFunction):
		return codes.NotFound
	case errors.Is(err, udf.ErrInvalidArgument), errors.Is(err, errMalformed):
		return codes.InvalidArgument
	case errors.Is(err, udf.ErrNoWorkers):
		return codes.Unavailable
	case errors.Is(err, errUnauthenticated), errors.Is(err, errNoPeerCert):
		return codes.Unauthenticated
	case errors.Is(err, scheduler.ErrOverCapacity), errors.Is(err, errSpillDraining):
		return codes.ResourceExhausted
	case errors.Is(err, scheduler.ErrClosed), errors.Is(err, errDraining):
		return codes.Unavailable
	case errors.Is(err, errUnknownAction), errors.Is(err, errNoObjectStore):
		return codes.Unimplemented
	case errors.Is(err, errShmOff), errors.Is(err, objectstore.ErrNoShm): // pyarrow raises FAILED_PRECONDITION as ArrowInvalid, like INVALID_ARGUMENT
		return codes.Unimplemented
	case errors.Is(err, objectstore.ErrExists):
		return codes.AlreadyExists
	case errors.Is(err, errTooLargeForSession), errors.Is(err, errAlone), errors.Is(err, errNotOnLane):
		return codes.FailedPrecondition
	case errors.Is(err, objectstore.ErrNotFound):
		return codes.NotFound
	case errors.Is(err, objectstore.ErrOverCapacity):
		return codes.ResourceExhausted
	case errors.Is(err, objectstore.ErrInvalidObject):
		return codes.InvalidArgument
	case errors.Is(err, objectstore.ErrClosed):
		return codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Internal
}

// toStatus turns err into a gRPC status error; nil stays nil.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codeOf(err), err.Error())
}
