// Objects through shared memory, for clients on the node's host: the
// client writes an Arrow IPC stream to a file in the node's private
// shared-memory directory and the node adopts it (object_adopt) as an
// object whose bytes are the mapped file; a reader asks where an object's
// file is (object_locate) and maps it itself. object_shm says where the
// directory is. docs/protocol.md, "Objects", has the contract.
package flight

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"
	"google.golang.org/grpc/peer"

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

// DefaultShmParent is where a node makes its shared-memory directory
// unless told otherwise.
const DefaultShmParent = "/dev/shm"

// errFault: reading a mapped file faulted (another process cut it short),
// or a parser read outside the bytes it was given.
var errFault = errors.New("memory fault")

// recovered turns a panic recovered while reading b into an error; a
// memory fault is errFault.
func recovered(r any) error {
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		return fmt.Errorf("%w at %#x: %v", errFault, f.Addr(), r)
	}
	return fmt.Errorf("%v", r)
}

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

// ShmDir is a node's private shared-memory directory: user-only, named
// quiver-UID-*, locked (flock) while the node lives, so that the next node
// to start can tell a directory whose node died (killed, it could not
// remove it) and remove it with its files.
type ShmDir struct {
	Path string
	lock *os.File
}

// OpenShmDir makes a new private directory in parent, after removing the
// directories of this user's nodes that died. It fails where parent is
// missing or not writable; the node then serves without shared memory.
func OpenShmDir(parent string) (*ShmDir, error) {
	uid := os.Geteuid()
	removeStaleShmDirs(parent, uid)
	// Made under a name the sweep above ignores, locked, then renamed: a
	// node starting at the same time never sees it unlocked.
	tmp, err := os.MkdirTemp(parent, fmt.Sprintf(".quiver-%d-", uid))
	if err != nil {
		return nil, fmt.Errorf("shared-memory directory: %w", err)
	}
	lock, err := os.Open(tmp)
	if err == nil {
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("shared-memory directory: %w", err)
	}
	dir := filepath.Join(parent, strings.TrimPrefix(filepath.Base(tmp), "."))
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("shared-memory directory: %w", err)
	}
	return &ShmDir{Path: dir, lock: lock}, nil
}

// Close removes the directory and every file in it. Clients that mapped
// a file keep their pages until they unmap them.
func (d *ShmDir) Close() error {
	err := os.RemoveAll(d.Path)
	d.lock.Close()
	return err
}

// removeStaleShmDirs removes uid's quiver directories in parent that no
// live node holds locked.
func removeStaleShmDirs(parent string, uid int) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	prefix := fmt.Sprintf("quiver-%d-", uid)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.IsDir() {
			continue
		}
		path := filepath.Join(parent, e.Name())
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &st) == nil && int(st.Uid) == uid &&
			syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			os.RemoveAll(path)
		}
		f.Close()
	}
}

// EnableShm serves object_adopt and object_locate with files in dir, a
// directory only the node's user can use (OpenShmDir). The caller removes
// dir after the object store is closed.
func (s *Server) EnableShm(dir string) {
	s.objects.shm.dir.Store(&dir)
}

// shmFiles tracks the files adopted: name -> id while the object's bytes
// are the mapped file, and the reverse.
type shmFiles struct {
	dir atomic.Pointer[string] // nil when off

	mu    sync.Mutex
	names map[string]objectstore.ID // adopted or being adopted ("" until stored)
	ids   map[objectstore.ID]string

	mapped      atomic.Int64 // files mapped now
	doubleFrees atomic.Int64 // release hooks called more than once: a store bug
}

// path is the directory, or "" when off.
func (f *shmFiles) path() string {
	if d := f.dir.Load(); d != nil {
		return *d
	}
	return ""
}

// reserve claims name for one adoption; false if it is taken.
func (f *shmFiles) reserve(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.names[name]; ok {
		return false
	}
	if f.names == nil {
		f.names = make(map[string]objectstore.ID)
		f.ids = make(map[objectstore.ID]string)
	}
	f.names[name] = ""
	return true
}

// stored records that the object id is name, unless its release hook ran
// already (the object was spilled or freed at once).
func (f *shmFiles) stored(name string, id objectstore.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.names[name]; ok {
		f.names[name] = id
		f.ids[id] = name
	}
}

// forget drops name and its id.
func (f *shmFiles) forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id, ok := f.names[name]; ok {
		delete(f.names, name)
		if id != "" {
			delete(f.ids, id)
		}
	}
}

// locate returns the file of id, or "".
func (f *shmFiles) locate(id objectstore.ID) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[id]
}

// releaser returns the release hook of the mapping m of name: unmap it,
// delete the file, forget the name.
func (f *shmFiles) releaser(name string, m []byte, log *zap.Logger) func() {
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			f.doubleFrees.Add(1)
			log.Error("a shared-memory object's release hook was called twice", zap.String("file", name))
			return
		}
		if err := syscall.Munmap(m); err != nil {
			log.Error("unmapping an object's file", zap.String("file", name), zap.Error(err))
		}
		f.mapped.Add(-1)
		if err := os.Remove(filepath.Join(f.path(), name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("removing an object's file", zap.String("file", name), zap.Error(err))
		}
		f.forget(name) // last: the name stays taken until the file is gone
	}
}

// fromUnixSocket reports whether the call came over a unix socket, that
// is from this host.
func fromUnixSocket(stream flight.FlightService_DoActionServer) bool {
	p, ok := peer.FromContext(stream.Context())
	return ok && p.Addr != nil && p.Addr.Network() == "unix"
}

// objectShm serves object_shm.
func (s *Server) objectShm(stream flight.FlightService_DoActionServer) ([]byte, error) {
	info := ShmInfo{}
	if s.cfg.Objects != nil && fromUnixSocket(stream) {
		info.Dir = s.objects.shm.path()
	}
	return json.Marshal(info)
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
	h, err := store.Acquire(objectstore.ID(req.ID))
	if err != nil {
		return nil, err
	}
	defer h.Release()
	loc := Located{Bytes: h.Size()}
	if fromUnixSocket(stream) {
		loc.File = s.objects.shm.locate(h.ID())
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
	shm := &s.objects.shm
	if shm.path() == "" || !fromUnixSocket(stream) {
		return errShmOff
	}
	var req struct {
		File string `json:"file"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fmt.Errorf("%w: object_adopt takes JSON {\"file\": NAME}: %v", errMalformed, err)
	}
	name := req.File
	if err := checkShmName(name); err != nil {
		return err
	}
	if !shm.reserve(name) {
		return fmt.Errorf("%w: file %q is adopted already", errMalformed, name)
	}
	m, rows, err := s.mapShmFile(name, store.Limit())
	if err != nil {
		shm.forget(name)
		return err
	}
	shm.mapped.Add(1)
	h, err := store.Put(stream.Context(), objectstore.Object{Stream: m, Free: shm.releaser(name, m, s.log)})
	if err != nil {
		return err // the store called the release hook
	}
	shm.stored(name, h.ID())
	return s.publish(h, rows, func(body []byte) error {
		return stream.Send(&flight.Result{Body: body})
	})
}

// checkShmName accepts a bare file name: no directory, no '.' or '..'.
func checkShmName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%w: object_adopt file %q: want the bare name of a file in the node's shared-memory directory", errMalformed, name)
	}
	return nil
}

// mapShmFile maps the file name read-only and checks that it holds an
// Arrow IPC stream; it returns the mapping and the stream's rows. A file
// it refuses is removed, unless it is a directory or another user's.
func (s *Server) mapShmFile(name string, limit int64) (m []byte, rows int64, err error) {
	path := filepath.Join(s.objects.shm.path(), name)
	remove := true
	defer func() {
		if err != nil && remove {
			_ = os.Remove(path)
		}
	}()
	// O_NOFOLLOW: a symbolic link is refused; O_NONBLOCK: opening a FIFO
	// does not wait for a writer.
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT):
			remove = false
			return nil, 0, fmt.Errorf("%w: object_adopt: no file %q in the node's shared-memory directory", errMalformed, name)
		case errors.Is(err, syscall.ELOOP):
			return nil, 0, fmt.Errorf("%w: object_adopt: %q is a symbolic link", errMalformed, name)
		}
		return nil, 0, fmt.Errorf("%w: object_adopt: opening %q: %v", errMalformed, name, err)
	}
	defer syscall.Close(fd)
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, 0, fmt.Errorf("object_adopt: %q: %w", name, err)
	}
	switch {
	case st.Mode&syscall.S_IFMT == syscall.S_IFDIR:
		remove = false
		return nil, 0, fmt.Errorf("%w: object_adopt: %q is a directory", errMalformed, name)
	case st.Mode&syscall.S_IFMT != syscall.S_IFREG:
		return nil, 0, fmt.Errorf("%w: object_adopt: %q is not a regular file", errMalformed, name)
	case int(st.Uid) != os.Geteuid():
		remove = false
		return nil, 0, fmt.Errorf("%w: object_adopt: %q belongs to uid %d, not to the node's user", errMalformed, name, st.Uid)
	case st.Nlink != 1:
		return nil, 0, fmt.Errorf("%w: object_adopt: %q has %d links", errMalformed, name, st.Nlink)
	case st.Size <= 0:
		return nil, 0, fmt.Errorf("%w: object_adopt: %q is empty", errMalformed, name)
	case st.Size > limit:
		return nil, 0, fmt.Errorf("%w: object_adopt: %q holds %d bytes, more than the store's memory (%d bytes)",
			objectstore.ErrOverCapacity, name, st.Size, limit)
	}
	m, err = syscall.Mmap(fd, 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, 0, fmt.Errorf("object_adopt: mapping %q: %w", name, err)
	}
	rows, err = validateStream(m, s.cfg.MaxMessageBytes, s.cfg.Mem, limit+int64(s.cfg.MaxMessageBytes))
	if err != nil {
		_ = syscall.Munmap(m)
		return nil, 0, fmt.Errorf("%w: object_adopt: %q: %v", errMalformed, name, err)
	}
	return m, rows, nil
}

// validateStream checks that b holds one Arrow IPC stream whose every
// message fits in maxMessage bytes, decoding every batch (without a copy:
// arrays point into b) and validating it as DoPut does; it returns the
// rows. It reads nothing outside b, and a fault reading b (a mapped file
// cut short meanwhile) is an error, not a crash. Buffers that compressed
// batches inflate to come from mem, at most budget bytes at once.
func validateStream(b []byte, maxMessage int, mem memory.Allocator, budget int64) (rows int64, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			rows, err = 0, recovered(r)
		}
	}()
	rdr, err := flight.NewRecordReader(&ipcFrames{b: b, maxMessage: maxMessage}, ipc.WithAllocator(newBudgetAllocator(mem, budget)))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, errors.New("no schema: the stream is empty")
		}
		return 0, fmt.Errorf("reading the schema: %w", err)
	}
	defer rdr.Release()
	n := 0
	for rdr.Next() {
		rec := rdr.RecordBatch()
		if err := validateBatch(rec); err != nil {
			return 0, fmt.Errorf("batch %d: %w", n, err)
		}
		rows += rec.NumRows()
		n++
	}
	if err := rdr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("batch %d: %w", n, err)
	}
	return rows, nil
}

// sendStream sends the messages of the IPC stream b, as they are, on a
// DoGet stream: the schema first, then the batches (and dictionaries).
// Each message's framing and header are checked again: b may be a file
// that changed since it was adopted. A fault reading b fails the call.
func sendStream(stream flight.FlightService_DoGetServer, b []byte, maxMessage int) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading the object's bytes: %w", recovered(r))
		}
	}()
	frames := &ipcFrames{b: b, maxMessage: maxMessage}
	for {
		fd, err := frames.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the object's stream is corrupt: %w", err)
		}
		if err := stream.Send(fd); err != nil {
			return err
		}
	}
}

// ipcFrames reads the messages of an Arrow IPC stream in b as FlightData
// (the header flatbuffer and the body), checking every length against b
// and every header with checkMessage before anyone parses it. It ends with
// io.EOF at the end-of-stream marker or at the end of b.
type ipcFrames struct {
	b          []byte
	off        int
	maxMessage int // the most one message (header and body) may hold
	views      int
}

func (f *ipcFrames) Recv() (*flight.FlightData, error) {
	rest := f.b[f.off:]
	if len(rest) == 0 {
		return nil, io.EOF // a stream may end without its marker
	}
	if len(rest) < 8 {
		return nil, fmt.Errorf("%d bytes at offset %d: not a message prefix", len(rest), f.off)
	}
	switch cont := binary.LittleEndian.Uint32(rest); cont {
	case 0xFFFFFFFF:
	case 0:
		return nil, io.EOF // the end-of-stream marker before format 0.15
	default:
		return nil, fmt.Errorf("offset %d: no continuation marker (0x%08x)", f.off, cont)
	}
	n := int64(int32(binary.LittleEndian.Uint32(rest[4:])))
	if n == 0 {
		return nil, io.EOF
	}
	if n < 8 || n > int64(len(rest)-8) {
		return nil, fmt.Errorf("offset %d: a message header of %d bytes, %d left", f.off, n, len(rest)-8)
	}
	end := 8 + int(n)
	header := rest[8:end:end]
	bodyLen, err := fbuf(header).bodyLength()
	if err == nil {
		err = fbuf(header).checkRows()
	}
	if err != nil {
		return nil, fmt.Errorf("offset %d: %w", f.off, err)
	}
	if bodyLen < 0 || bodyLen > int64(len(rest)-end) {
		return nil, fmt.Errorf("offset %d: a message body of %d bytes, %d left", f.off, bodyLen, len(rest)-end)
	}
	if n+bodyLen > int64(f.maxMessage)-1024 {
		return nil, fmt.Errorf("offset %d: a message of %d bytes, more than the node sends in one (%d); write smaller batches",
			f.off, n+bodyLen, f.maxMessage-1024)
	}
	bend := end + int(bodyLen)
	body := rest[end:bend:bend]
	if err := checkMessage(header, body, f.maxMessage, &f.views); err != nil {
		return nil, fmt.Errorf("offset %d: IPC message header: %w", f.off, err)
	}
	f.off += bend
	return &flight.FlightData{DataHeader: header, DataBody: body}, nil
}

// checkRows refuses a RecordBatch message, or a DictionaryBatch, whose
// length (field 0 of the RecordBatch) is negative: arrow-go would count
// the rows from the columns, and a client would get the header as it is.
func (b fbuf) checkRows() error {
	msg, err := b.deref(0)
	if err != nil {
		return err
	}
	kind, err := b.fieldU8(msg, 1)
	if err != nil || (kind != 2 && kind != 3) {
		return err
	}
	tab, ok, err := b.table(msg, 2)
	if err != nil || !ok {
		return err
	}
	if kind == 2 { // DictionaryBatch: its data (field 1) is a RecordBatch
		if tab, ok, err = b.table(tab, 1); err != nil || !ok {
			return err
		}
	}
	at, err := b.field(tab, 0)
	if err != nil || at == 0 {
		return err
	}
	if at+8 > uint64(len(b)) {
		return fmt.Errorf("batch length at %d outside %d bytes", at, len(b))
	}
	if n := int64(binary.LittleEndian.Uint64(b[at:])); n < 0 {
		return fmt.Errorf("a batch of %d rows", n)
	}
	return nil
}

// bodyLength reads Message.bodyLength (field 3, a long) of the Message
// flatbuffer b.
func (b fbuf) bodyLength() (int64, error) {
	msg, err := b.deref(0)
	if err != nil {
		return 0, err
	}
	at, err := b.field(msg, 3)
	if err != nil || at == 0 {
		return 0, err
	}
	if at+8 > uint64(len(b)) {
		return 0, fmt.Errorf("body length at %d outside %d bytes", at, len(b))
	}
	return int64(binary.LittleEndian.Uint64(b[at:])), nil
}
