// One task on one worker: LOAD when the worker lacks the function, TASK
// with its arguments in the arena or the frame, and the answer.
package udf

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// run sends LOAD if needed and TASK, and reads the answer.
func (w *pyWorker) run(t Task) (Result, error) {
	hdr := taskHeader{Fn: t.FnID, Context: t.Context, Parts: t.Parts}
	body, err := w.placeArgs(t, &hdr)
	if err != nil {
		return Result{}, err // the arguments could not be encoded; nothing was sent
	}
	used := 0 // the arena bytes this task used
	if hdr.Arena != nil {
		used = int(hdr.Arena[1])
	}
	if !w.loaded[t.FnID] {
		if err := writeFrame(w.conn, frameLoad, loadHeader{Fn: t.FnID, Name: t.Name, Concurrency: t.Concurrency}, t.Blob); err != nil {
			return Result{}, w.died(err)
		}
		w.loaded[t.FnID] = true
	}
	w.seq++
	hdr.Task = w.seq
	if err := writeFrame(w.conn, frameTask, hdr, body); err != nil {
		return Result{}, w.died(err)
	}
	// Only a whole RESULT frame makes the arena's bytes a result: a worker
	// that dies mid-task is end-of-file here, whatever it left in the arena.
	f, err := readFrame(w.r)
	if err != nil {
		return Result{}, w.died(err)
	}
	switch f.kind {
	case frameResult:
		var h struct {
			Task   uint64   `json:"task"`
			Rows   int64    `json:"rows"`
			Ms     float64  `json:"ms"`
			Arena  []uint64 `json:"arena"`
			Pinned bool     `json:"pinned"`
			Parts  []struct {
				Ms    float64  `json:"ms"`
				Error *PyError `json:"error"`
			} `json:"parts"`
		}
		if err := f.decodeHeader(&h); err != nil {
			return Result{}, w.died(err)
		}
		if h.Task != w.seq {
			return Result{}, w.died(fmt.Errorf("%w: RESULT for task %d, want %d", ErrProtocol, h.Task, w.seq))
		}
		if len(h.Parts) != len(t.Parts) {
			return Result{}, w.died(fmt.Errorf("%w: RESULT with %d parts for a task of %d", ErrProtocol, len(h.Parts), len(t.Parts)))
		}
		data := f.body
		if h.Arena != nil {
			if len(f.body) > 0 {
				return Result{}, w.died(fmt.Errorf("%w: RESULT with both an arena range and a body", ErrProtocol))
			}
			if data, err = w.arena.span(h.Arena); err != nil {
				return Result{}, w.died(err)
			}
			used = max(used, int(h.Arena[0]+h.Arena[1]))
		}
		res := Result{Rows: h.Rows, WorkMs: h.Ms}
		if t.Parts != nil {
			res.Parts = make([]PartResult, len(h.Parts))
			for i, p := range h.Parts {
				res.Parts[i] = PartResult{WorkMs: p.Ms, Err: p.Error}
			}
		}
		switch {
		case t.Decode != nil:
			err = t.Decode(data) // copies out of the arena before the worker's next task
		case h.Arena != nil:
			res.IPC = bytes.Clone(data)
		default:
			res.IPC = data
		}
		w.afterTask(used, h.Pinned)
		return res, err
	case frameError:
		var h struct {
			Task   uint64 `json:"task"`
			Pinned bool   `json:"pinned"`
			PyError
		}
		if err := json.Unmarshal(f.header, &h); err != nil {
			return Result{}, w.died(fmt.Errorf("%w: bad ERROR header: %v", ErrProtocol, err))
		}
		if h.Task != w.seq {
			return Result{}, w.died(fmt.Errorf("%w: ERROR for task %d, want %d", ErrProtocol, h.Task, w.seq))
		}
		w.afterTask(used, h.Pinned)
		pe := h.PyError
		return Result{}, &pe
	}
	return Result{}, w.died(fmt.Errorf("%w: answer of kind %d to a task", ErrProtocol, f.kind))
}

// placeArgs writes the task's arguments into the arena, growing it up to
// arenaMax, and names them in hdr; arguments that cannot go there (no arena,
// past arenaMax, or the worker still holds earlier arguments it read from
// the arena) are returned as the frame body.
func (w *pyWorker) placeArgs(t Task, hdr *taskHeader) ([]byte, error) {
	a := w.arena
	if a != nil {
		hdr.ArenaSize = a.size() // the worker may put its result there either way
	}
	if a == nil || w.pinned {
		if t.Encode == nil {
			return t.Args, nil
		}
		var buf bytes.Buffer
		err := t.Encode(&buf)
		return buf.Bytes(), err
	}
	args := t.Args
	if t.Encode != nil {
		aw := arenaWriter{mem: a.mem}
		if err := t.Encode(&aw); err != nil {
			return nil, err
		}
		if aw.spill == nil {
			a.fit(aw.n) // room for a result as large, for the worker
			hdr.Arena, hdr.ArenaSize = []uint64{0, uint64(aw.n)}, a.size()
			return nil, nil
		}
		args = aw.spill.Bytes() // did not fit: grow, then copy them in once
	}
	if !a.fit(len(args)) {
		return args, nil
	}
	copy(a.mem, args)
	hdr.Arena, hdr.ArenaSize = []uint64{0, uint64(len(args))}, a.size()
	return nil, nil
}

// afterTask records what the task left in the arena: whether the worker
// still holds arguments it read from there (then the arena is left alone
// until it says otherwise), and the pages it touched, which are trimmed
// when this task needed fewer than an earlier one.
func (w *pyWorker) afterTask(used int, pinned bool) {
	w.pinned = pinned
	if w.arena == nil {
		return
	}
	w.arena.used(used)
	if !pinned {
		w.arena.trim(used)
	}
}

type taskHeader struct {
	Task      uint64   `json:"task"`
	Fn        string   `json:"fn"`
	Arena     []uint64 `json:"arena,omitempty"`      // [offset, length] of the arguments in the arena
	ArenaSize int      `json:"arena_size,omitempty"` // the arena's size now: the worker remaps when it grew
	// Context is the caller's task context (a JSON object), when it sent one.
	Context json.RawMessage `json:"context,omitempty"`
	// Parts are the rows of each task of a group (Task.Parts).
	Parts []int64 `json:"parts,omitempty"`
}

// PyError is an exception raised by a Python function in a worker.
type PyError struct {
	Func      string `json:"fn"`
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

func (e *PyError) Error() string {
	return fmt.Sprintf("%s raised %s: %s\nRemote traceback:\n%s", e.Func, e.Type, e.Message, e.Traceback)
}

// loadHeader is a LOAD frame's header; concurrency is left out when 1.
type loadHeader struct {
	Fn          string `json:"fn"`
	Name        string `json:"name"`
	Concurrency int    `json:"concurrency,omitempty"`
}
