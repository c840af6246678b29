// The writer goroutine's state: stream files, indexes, the size bound.
package record

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/internal/arrowio"
)

// compactMin is the least stale index bytes worth rewriting an index for
// (a variable for tests).
var compactMin int64 = 64 << 10

// writer owns the files of a recording. Only the writer goroutine uses it
// (and New, before starting it).
type writer struct {
	dir      string
	max      int64
	logEvery int64
	log      *zap.Logger
	stats    *stats
	total    int64 // bytes of every stream and index file under dir

	funcs map[string]*folder   // by function name
	calls map[int64]*callFiles // calls with a file on disk, or deleted while open
	open  map[int64]*callFiles // calls whose stream file is open
	order []int64              // call ids by file creation, oldest first; may hold gone ids
}

// folder is one function's folder and its index.
type folder struct {
	path       string
	index      *os.File
	buf        *bufio.Writer
	indexBytes int64 // size of index.jsonl, buffered lines included
	staleBytes int64 // bytes of lines whose call was deleted
	failed     bool
}

// callFiles is one call's stream file.
type callFiles struct {
	id        int64
	fold      *folder
	name      string
	file      *os.File
	buf       *bufio.Writer
	count     *arrowio.CountingWriter
	ipc       *ipc.Writer
	started   bool  // the schema and a batch have been written
	size      int64 // bytes of the file, buffered ones included
	lineBytes int64 // bytes of its index lines
	open      bool  // being written: its end has not come yet
	gone      bool  // deleted, or failed: later batches are skipped
}

// last is where an existing recording stood: its highest call id and the
// latest t_ns.
type last struct {
	call int64
	t    time.Duration
}

// openWriter creates dir or takes over the recording in it.
func openWriter(dir string, max, logEvery int64, log *zap.Logger, st *stats) (*writer, last, error) {
	w := &writer{dir: dir, max: max, logEvery: logEvery, log: log, stats: st, funcs: map[string]*folder{}, calls: map[int64]*callFiles{},
		open: map[int64]*callFiles{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, last{}, fmt.Errorf("record: %w", err)
	}
	l, err := w.scan()
	if err != nil {
		return nil, last{}, err
	}
	w.makeRoom(0)
	st.diskBytes.Store(w.total)
	return w, l, nil
}

// scan accounts the recording already in dir: every folder with an index.
// Its calls become the oldest, in id order.
func (w *writer) scan() (last, error) {
	var l last
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return l, fmt.Errorf("record: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		fpath := filepath.Join(w.dir, e.Name())
		lines, size, err := readIndex(filepath.Join(fpath, IndexName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return l, fmt.Errorf("record: %w", err)
		}
		fold := &folder{path: fpath, indexBytes: size}
		// The function's name is not needed to continue: new calls of the
		// same name find this folder by its path.
		w.funcs["\x00"+fpath] = fold
		w.total += size
		for _, ln := range lines {
			if ln.Call > l.call {
				l.call = ln.Call
			}
			if t := time.Duration(ln.TNs); t > l.t {
				l.t = t
			}
			cf := w.calls[ln.Call]
			if cf == nil {
				cf = &callFiles{id: ln.Call, fold: fold, name: ln.File, gone: true}
				if fi, err := os.Stat(filepath.Join(fpath, ln.File)); err == nil && filepath.Base(ln.File) == ln.File {
					cf.gone, cf.size = false, fi.Size()
					w.total += cf.size
				}
				w.calls[ln.Call] = cf
			}
			cf.lineBytes += ln.size
			if cf.gone {
				fold.staleBytes += ln.size
			}
		}
	}
	for id, cf := range w.calls {
		if cf.gone {
			delete(w.calls, id)
			continue
		}
		w.order = append(w.order, id)
	}
	sort.Slice(w.order, func(i, j int) bool { return w.order[i] < w.order[j] })
	return l, nil
}

// sizedLine is an index line and its length in the file.
type sizedLine struct {
	Line
	size int64
}

// readIndex reads an index file; lines that do not parse (a line cut by a
// crash) are skipped. size is the file's size.
func readIndex(path string) ([]sizedLine, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var out []sizedLine
	var size int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b := sc.Bytes()
		size += int64(len(b)) + 1
		var ln Line
		if json.Unmarshal(b, &ln) != nil || ln.File == "" {
			continue
		}
		out = append(out, sizedLine{ln, int64(len(b)) + 1})
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	return out, size, nil
}

// folderOf returns function's folder, opening its index for appending.
func (w *writer) folderOf(function string) (*folder, error) {
	if f := w.funcs[function]; f != nil {
		return f, nil
	}
	fpath := filepath.Join(w.dir, FolderName(function))
	fold := w.funcs["\x00"+fpath] // found by scan
	if fold == nil {
		fold = &folder{path: fpath}
	}
	delete(w.funcs, "\x00"+fpath)
	w.funcs[function] = fold
	if err := os.MkdirAll(fpath, 0o700); err != nil {
		fold.failed = true
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(fpath, IndexName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fold.failed = true
		return nil, err
	}
	fold.index, fold.buf = f, bufio.NewWriterSize(f, 64<<10)
	return fold, nil
}

// write records one batch of a call, if it fits under the bound once the
// oldest finished calls are deleted.
func (w *writer) write(it item) {
	cf := w.calls[it.call.id]
	if cf != nil && cf.gone {
		w.stats.skipped.Add(1)
		return
	}
	need := estimate(it)
	if cf == nil {
		need += schemaBytes(it.call.schema) + eosBytes
	}
	if !w.makeRoom(need) {
		if n := w.stats.overBound.Add(1); n%w.logEvery == 1 || w.logEvery == 1 {
			w.log.Warn("recording at its bound with only calls in progress: their batches are left out until one ends (the calls are unaffected)",
				zap.Int64("left_out_total", n), zap.Int64("max_bytes", w.max))
		}
		return
	}
	if cf == nil {
		var err error
		if cf, err = w.create(it.call); err != nil {
			w.fail("creating a call's stream file", err, it.call.function)
			w.calls[it.call.id] = &callFiles{id: it.call.id, gone: true, open: true}
			w.stats.skipped.Add(1)
			return
		}
	}
	before := cf.count.N
	if err := cf.ipc.Write(it.rec); err != nil {
		w.fail("writing a batch", err, it.call.function)
		w.drop(cf)
		return
	}
	n := cf.count.N - before
	if !cf.started { // the first batch: the schema went out with it
		cf.started = true
		n -= schemaBytes(it.call.schema)
	}
	cf.size = cf.count.N
	w.total += cf.count.N - before
	line, _ := json.Marshal(Line{Call: cf.id, Seq: it.seq, TNs: int64(it.t), Rows: it.rec.NumRows(), Bytes: n, File: cf.name})
	line = append(line, '\n')
	if _, err := cf.fold.buf.Write(line); err != nil {
		w.fail("writing the index", err, it.call.function)
	}
	cf.lineBytes += int64(len(line))
	cf.fold.indexBytes += int64(len(line))
	w.total += int64(len(line))
	w.stats.batches.Add(1)
	w.makeRoom(0) // in case the estimate fell short
	w.stats.diskBytes.Store(w.total)
}

// eosBytes is the end-of-stream marker that completes a stream file.
const eosBytes = 8

// estimate is at least the bytes a batch adds to a recording: its buffers
// padded, its message's metadata, its index line.
func estimate(it item) int64 {
	bufs := int64(0)
	for _, col := range it.rec.Columns() {
		bufs += countBuffers(col.Data())
	}
	return it.size + 40*bufs + 512
}

func countBuffers(d arrow.ArrayData) int64 {
	n := int64(len(d.Buffers())) + 1 // and its field node
	for _, c := range d.Children() {
		n += countBuffers(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		n += countBuffers(d.Dictionary()) + 8 // a dictionary batch of its own
	}
	return n
}

// create opens the stream file of a call at its first batch.
func (w *writer) create(c *Call) (*callFiles, error) {
	fold, err := w.folderOf(c.function)
	if err != nil {
		return nil, err
	}
	if fold.failed {
		return nil, errors.New("the function's folder failed before")
	}
	name := streamName(c.id)
	f, err := os.OpenFile(filepath.Join(fold.path, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cf := &callFiles{id: c.id, fold: fold, name: name, file: f, buf: bufio.NewWriterSize(f, 256<<10), open: true}
	cf.count = &arrowio.CountingWriter{W: cf.buf}
	cf.ipc = ipc.NewWriter(cf.count, ipc.WithSchema(c.schema))
	w.calls[c.id] = cf
	w.open[c.id] = cf
	w.order = append(w.order, c.id)
	return cf, nil
}

// end completes a call's stream file.
func (w *writer) end(id int64) {
	cf := w.calls[id]
	if cf == nil {
		return // no batch was recorded
	}
	if cf.gone {
		delete(w.calls, id)
		return
	}
	cf.open = false
	delete(w.open, id)
	before := cf.count.N
	err := cf.ipc.Close()
	if err == nil {
		err = cf.buf.Flush()
	}
	if cerr := cf.file.Close(); err == nil {
		err = cerr
	}
	cf.file, cf.buf, cf.ipc = nil, nil, nil
	w.total += cf.count.N - before
	cf.size = cf.count.N
	if err != nil {
		w.fail("completing a stream file", err, cf.name)
	}
	w.makeRoom(0)
	w.stats.diskBytes.Store(w.total)
}

// drop deletes a call's file and marks it gone.
func (w *writer) drop(cf *callFiles) {
	if cf.file != nil {
		cf.file.Close()
		cf.file, cf.buf, cf.ipc = nil, nil, nil
		delete(w.open, cf.id)
	}
	if err := os.Remove(filepath.Join(cf.fold.path, cf.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.fail("deleting a stream file", err, cf.name)
	}
	w.total -= cf.size
	cf.gone = true
	cf.fold.staleBytes += cf.lineBytes
	if !cf.open {
		delete(w.calls, cf.id)
	}
	w.compact(cf.fold)
}

// makeRoom deletes the oldest finished calls until need more bytes fit
// under the bound. It reports whether they fit: calls in progress are
// never deleted, so a recording of long calls stops growing instead.
func (w *writer) makeRoom(need int64) bool {
	for w.total+need > w.max {
		if !w.evictOldest() {
			return false
		}
	}
	return true
}

// evictOldest deletes the oldest finished call; false if there is none.
func (w *writer) evictOldest() bool {
	keep := w.order[:0]
	evicted := false
	for i, id := range w.order {
		cf := w.calls[id]
		switch {
		case cf == nil || cf.gone:
			continue // deleted before: forget it
		case !evicted && !cf.open:
			w.drop(cf)
			w.stats.evicted.Add(1)
			evicted = true
			keep = append(keep, w.order[i+1:]...)
			w.order = keep
			return true
		}
		keep = append(keep, id)
	}
	w.order = keep
	return false
}

// compact rewrites a folder's index without the lines of deleted calls,
// once they are most of it.
func (w *writer) compact(fold *folder) {
	if fold.staleBytes < compactMin || fold.staleBytes*2 < fold.indexBytes || fold.failed {
		return
	}
	path := filepath.Join(fold.path, IndexName)
	if fold.buf != nil {
		if err := fold.buf.Flush(); err != nil {
			w.fail("writing the index", err, path)
			return
		}
	}
	lines, _, err := readIndex(path)
	if err != nil {
		w.fail("reading the index to compact it", err, path)
		return
	}
	var out bytes.Buffer
	for _, ln := range lines {
		if cf := w.calls[ln.Call]; cf != nil && !cf.gone {
			b, _ := json.Marshal(ln.Line)
			out.Write(b)
			out.WriteByte('\n')
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		w.fail("rewriting the index", err, path)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		w.fail("rewriting the index", err, path)
		return
	}
	if fold.index != nil {
		fold.index.Close()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			fold.failed = true
			fold.index, fold.buf = nil, nil
			w.fail("reopening the index", err, path)
		} else {
			fold.index, fold.buf = f, bufio.NewWriterSize(f, 64<<10)
		}
	}
	w.total += int64(out.Len()) - fold.indexBytes
	fold.indexBytes, fold.staleBytes = int64(out.Len()), 0
}

// flush writes the buffered bytes of every open file, so that a reader
// sees whole batches and their lines.
func (w *writer) flush() {
	for _, cf := range w.open {
		if cf.buf != nil {
			if err := cf.buf.Flush(); err != nil {
				w.fail("writing a stream file", err, cf.name)
				w.drop(cf)
			}
		}
	}
	for _, fold := range w.funcs {
		if fold.buf != nil {
			if err := fold.buf.Flush(); err != nil {
				w.fail("writing the index", err, fold.path)
			}
		}
	}
}

// closeAll completes every open stream and closes every index.
func (w *writer) closeAll() {
	for id := range w.open {
		w.end(id)
	}
	for _, fold := range w.funcs {
		if fold.buf != nil {
			if err := fold.buf.Flush(); err != nil {
				w.fail("writing the index", err, fold.path)
			}
			fold.index.Close()
			fold.index, fold.buf = nil, nil
		}
	}
	w.stats.diskBytes.Store(w.total)
}

// fail counts a failed file operation and logs it; the recording goes on.
func (w *writer) fail(what string, err error, where string) {
	w.stats.writeErrors.Add(1)
	w.log.Error("recording: "+what+" failed (the calls are unaffected)", zap.String("where", where), zap.Error(err))
}

// schemaBytes is the size of schema's IPC message in a stream.
func schemaBytes(schema *arrow.Schema) int64 {
	c := &arrowio.CountingWriter{W: io.Discard}
	w := ipc.NewWriter(c, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	w.Close()
	return c.N - 8 // less the end-of-stream marker
}
