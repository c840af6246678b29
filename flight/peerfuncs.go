// Python functions on peers: the origin serves a registered function's
// registration (fetch_function); a peer running a spilled task of it
// fetches it once and keeps it, out of its catalog.
package flight

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/metadata"

	"github.com/quiver-udf/quiver/udf"
)

// ActionFetchFunction answers the registration of the Python function of
// a content hash (body: the hash) as a register action's body.
const ActionFetchFunction = "fetch_function"

// fetchTimeout bounds fetching a function from its origin.
const fetchTimeout = 30 * time.Second

// maxPeerFuncs bounds the functions a node keeps for its peers.
const maxPeerFuncs = 256

// peerFuncs are the Python functions peers spilled tasks of, by hash. They
// are not in the catalog: no name of a user's can clash with them.
type peerFuncs struct {
	mu    sync.Mutex
	funcs map[string]udf.Func
	group singleflight.Group
}

// fetchFunction serves fetch_function from the catalog.
func (s *Server) fetchFunction(body []byte) ([]byte, error) {
	hash := string(body)
	for _, f := range s.cat.List() {
		if py, ok := f.(*udf.PyFunc); ok && py.Hash() == hash {
			return encodeRegister(py, s.cfg.Mem)
		}
	}
	return nil, fmt.Errorf("%w: no registered python function has hash %.64q", udf.ErrUnknownFunction, hash)
}

// encodeRegister is the register body of py (register.go reads it).
func encodeRegister(py *udf.PyFunc, mem memory.Allocator) ([]byte, error) {
	h := struct {
		Name    string  `json:"name"`
		Returns string  `json:"returns"`
		Args    *string `json:"args,omitempty"`
		Table   bool    `json:"table"`
		Conc    int     `json:"concurrency,omitempty"`
	}{Name: py.Name(), Table: py.IsTable()}
	if c := py.Concurrency(); c > 1 {
		h.Conc = c
	}
	ret := arrow.NewSchema([]arrow.Field{{Name: py.Name(), Type: py.Returns(), Nullable: true}}, nil)
	h.Returns = base64.StdEncoding.EncodeToString(flight.SerializeSchema(ret, mem))
	if args := py.Args(); args != nil {
		a := base64.StdEncoding.EncodeToString(flight.SerializeSchema(arrow.NewSchema(args, nil), mem))
		h.Args = &a
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	out := binary.LittleEndian.AppendUint32(nil, uint32(len(js)))
	out = append(out, js...)
	return append(out, py.Blob()...), nil
}

// lookupCall returns the function a call names: by name from the catalog,
// or, for a peer call naming a content hash (HeaderFuncHash), the function
// of that hash, fetched once from the origin (HeaderOrigin) when this node
// lacks it.
func (s *Server) lookupCall(ctx context.Context, name string) (udf.Func, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	hash := lastHeader(md, HeaderFuncHash)
	if hash == "" {
		return s.cat.Lookup(name)
	}
	if f, err := s.cat.Lookup(name); err == nil {
		if py, ok := f.(*udf.PyFunc); ok && py.Hash() == hash {
			return py, nil
		}
	}
	s.peerFns.mu.Lock()
	f, ok := s.peerFns.funcs[hash]
	s.peerFns.mu.Unlock()
	if ok {
		return f, nil
	}
	origin := lastHeader(md, HeaderOrigin)
	if s.cfg.Peers == nil || origin == "" {
		return nil, fmt.Errorf("%w: %s (hash %.64s) is not here, and there is no origin to fetch it from", udf.ErrUnknownFunction, name, hash)
	}
	v, err, _ := s.peerFns.group.Do(hash, func() (any, error) {
		return s.fetchFrom(origin, hash)
	})
	if err != nil {
		return nil, err
	}
	return v.(udf.Func), nil
}

// fetchFrom fetches the function of hash from origin, checks that it is
// what the hash says, and keeps it.
func (s *Server) fetchFrom(origin, hash string) (udf.Func, error) {
	// Not the call's context: one call going away must not fail the
	// fetch that concurrent calls wait on.
	ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
	defer cancel()
	body, err := s.cfg.Peers.FetchFunction(ctx, origin, hash)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching function %.64s from %s: %v", udf.ErrUnknownFunction, hash, origin, err)
	}
	fn, err := s.newPyFunc(body)
	if err != nil {
		return nil, err
	}
	if fn.Hash() != hash {
		return nil, fmt.Errorf("%w: %s answered a function of hash %s for %.64s", errMalformed, origin, fn.Hash(), hash)
	}
	s.peerFns.mu.Lock()
	defer s.peerFns.mu.Unlock()
	if s.peerFns.funcs == nil || len(s.peerFns.funcs) >= maxPeerFuncs {
		s.peerFns.funcs = map[string]udf.Func{}
	}
	s.peerFns.funcs[hash] = fn
	return fn, nil
}
