// Objects through shared memory, for clients on the node's host: the
// client writes an Arrow IPC stream to a file in the node's private
// shared-memory directory and the node adopts it (object_adopt) as an
// object whose bytes are the mapped file; a reader asks where an object's
// file is (object_locate) and maps it itself. object_shm says where the
// directory is. docs/protocol.md, "Objects", has the contract.
package flight

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/peer"

	"github.com/quiver-udf/quiver/internal/ipccheck"
	"github.com/quiver-udf/quiver/objectstore"
)

// The shared-memory actions.
const (
	// ActionObjectShm answers JSON ShmInfo: the directory, or "" where the
	// caller cannot use it (shared memory off, or a caller on TCP).
	ActionObjectShm = "object_shm"
	// ActionObjectAdopt takes JSON {"file": NAME}, a file in the directory
	// holding an Arrow IPC stream, and stores it as an object; it answers
	// JSON PutResult, like DoPut, and holds the reference the same way
	// (object_release drops it).
	ActionObjectAdopt = "object_adopt"
	// ActionObjectLocate takes JSON {"id": ID} and answers JSON Located:
	// the object's file while it is held as one, else "" (and "" to a
	// caller that is not on the node's unix socket).
	ActionObjectLocate = "object_locate"
)

// errShmOff: object_adopt where the node has no shared-memory directory,
// or from a caller that is not on the node's unix socket.
var errShmOff = errors.New("shared memory is off for this call: the node has no shared-memory directory, or the call did not come over its unix socket; use DoPut")

// ShmInfo is the answer of object_shm.
type ShmInfo struct {
	Dir string `json:"dir"`
}

// Located is the answer of object_locate. File is a name in the
// shared-memory directory, or "" when the object is not held as a file
// (stored by DoPut, or spilled and read back): read it with DoGet then.
type Located struct {
	File  string `json:"file"`
	Bytes int64  `json:"bytes"`
}

// fromUnixSocket reports whether the call came over a unix socket, that
// is from this host.
func fromUnixSocket(stream flight.FlightService_DoActionServer) bool {
	p, ok := peer.FromContext(stream.Context())
	return ok && p.Addr != nil && p.Addr.Network() == "unix"
}

// shmDir is the store's shared-memory directory where this call may use
// it (it came over the node's unix socket), else "".
func (s *Server) shmDir(stream flight.FlightService_DoActionServer) string {
	if s.cfg.Objects == nil || !fromUnixSocket(stream) {
		return ""
	}
	return s.cfg.Objects.ShmDir()
}

// objectShm serves object_shm.
func (s *Server) objectShm(stream flight.FlightService_DoActionServer) ([]byte, error) {
	return json.Marshal(ShmInfo{Dir: s.shmDir(stream)})
}

// objectLocate serves object_locate.
func (s *Server) objectLocate(stream flight.FlightService_DoActionServer, body []byte) ([]byte, error) {
	store := s.cfg.Objects
	if store == nil {
		return nil, errNoObjectStore
	}
	var req struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: object_locate takes JSON {\"id\": ID}: %v", errMalformed, err)
	}
	file, size, err := store.Locate(objectstore.ID(req.ID))
	if err != nil {
		return nil, err
	}
	loc := Located{Bytes: size}
	if s.shmDir(stream) != "" {
		loc.File = file
	}
	return json.Marshal(loc)
}

// objectAdopt serves object_adopt: it answers itself, so that a reference
// whose answer never reached the client is released.
func (s *Server) objectAdopt(stream flight.FlightService_DoActionServer, body []byte) error {
	store := s.cfg.Objects
	if store == nil {
		return errNoObjectStore
	}
	if s.draining.Load() {
		return errDraining
	}
	if s.shmDir(stream) == "" {
		return errShmOff
	}
	var req struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("%w: object_adopt takes JSON {\"file\": NAME}: %v", errMalformed, err)
	}
	h, rows, err := store.Adopt(stream.Context(), req.File, s.cfg.MaxMessageBytes)
	if err != nil {
		return err
	}
	return s.publish(h, rows, func(body []byte) error {
		return stream.Send(&flight.Result{Body: body})
	})
}

// sendStream sends the messages of the IPC stream b, as they are, on a
// DoGet stream: the schema first, then the batches (and dictionaries).
// Each message's framing and header are checked again: b may be a file
// that changed since it was adopted. A fault reading b fails the call.
func sendStream(stream flight.FlightService_DoGetServer, b []byte, maxMessage int) error {
	var fd flight.FlightData
	return ipccheck.Each(b, maxMessage, func(header, body []byte) error {
		fd.DataHeader, fd.DataBody = header, body
		return stream.Send(&fd)
	})
}
