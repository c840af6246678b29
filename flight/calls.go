// Calls as the node reports them: an id per call, a summary per function,
// the last errors, and the hook (Config.OnCall) that metrics observe.
package flight

import (
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaxReportedFunctions bounds the functions the per-function summary (and
// the metrics' function label) names; calls of any further function count
// under OtherFunction.
const MaxReportedFunctions = 200

// OtherFunction names the calls of functions past MaxReportedFunctions.
const OtherFunction = "other"

// recentErrorsKept is how many call errors cluster_status reports.
const recentErrorsKept = 50

// CallRecord is one finished call of a function, as Config.OnCall sees it.
type CallRecord struct {
	ID       string
	Function string // as capped for reporting: at most MaxReportedFunctions names, then OtherFunction
	Code     codes.Code
	Duration time.Duration
}

// FunctionCalls sums the calls of one function since the node started.
type FunctionCalls struct {
	Function     string  `json:"function"`
	Calls        int64   `json:"calls_total"`
	Errors       int64   `json:"errors_total"` // calls that ended with a code other than OK
	SecondsTotal float64 `json:"seconds_total"`
}

// CallError is one call that failed, as cluster_status's recent_errors
// lists it.
type CallError struct {
	Time     time.Time `json:"time"`
	Call     string    `json:"call"`
	Function string    `json:"function"`
	Code     string    `json:"code"`
	Message  string    `json:"message"`
}

// callLog keeps the per-function summary and the last errors. It is
// touched once per call, never per batch.
type callLog struct {
	mu     sync.Mutex
	funcs  map[string]*FunctionCalls
	recent [recentErrorsKept]CallError
	next   int // where the next error goes in recent
	count  int // errors in recent
}

// entry is the sums of fn, or of OtherFunction past the cap of names.
// Called with mu held.
func (l *callLog) entry(fn string) *FunctionCalls {
	if l.funcs == nil {
		l.funcs = map[string]*FunctionCalls{}
	}
	if e, ok := l.funcs[fn]; ok {
		return e
	}
	if len(l.funcs) >= MaxReportedFunctions {
		fn = OtherFunction
		if e, ok := l.funcs[fn]; ok {
			return e
		}
	}
	e := &FunctionCalls{Function: fn}
	l.funcs[fn] = e
	return e
}

// add counts one call and keeps its error; it returns the name reported.
func (l *callLog) add(fn string, code codes.Code, d time.Duration, ce *CallError) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(fn)
	e.Calls++
	e.SecondsTotal += d.Seconds()
	if code != codes.OK {
		e.Errors++
	}
	if ce != nil {
		l.recent[l.next] = *ce
		l.next = (l.next + 1) % recentErrorsKept
		l.count = min(l.count+1, recentErrorsKept)
	}
	return e.Function
}

// summary returns the per-function sums by name and the errors kept,
// newest first.
func (l *callLog) summary() ([]FunctionCalls, []CallError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fns := make([]FunctionCalls, 0, len(l.funcs))
	for _, e := range l.funcs {
		fns = append(fns, *e)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Function < fns[j].Function })
	errs := make([]CallError, 0, l.count)
	for i := 1; i <= l.count; i++ {
		errs = append(errs, l.recent[(l.next-i+recentErrorsKept)%recentErrorsKept])
	}
	return fns, errs
}

// endCall finishes the call id of function fn (possibly "" when the call
// failed before naming one) that started at start: it maps err to a gRPC
// status whose message ends with the call's id, logs the failure with the
// id, counts the call and keeps its error.
func (s *Server) endCall(id, fn string, start time.Time, err error) error {
	d := time.Since(start)
	code := codes.OK
	var ce *CallError
	if err != nil {
		st := toStatus(err)
		code = codeOf(st)
		msg := status.Convert(st).Message() + " (call " + id + ")"
		err = status.Error(code, msg)
		s.logCallError(id, fn, code, st)
		if code != codes.Canceled {
			ce = &CallError{Time: time.Now().UTC(), Call: id, Function: fn, Code: code.String(), Message: msg}
		}
	}
	if fn == "" {
		fn = "none"
	}
	rec := CallRecord{ID: id, Function: s.calls.add(fn, code, d, ce), Code: code, Duration: d}
	if s.cfg.OnCall != nil {
		s.cfg.OnCall(rec)
	}
	return err
}

// logCallError logs a failed call as finish does, with its id and function.
func (s *Server) logCallError(id, fn string, code codes.Code, err error) {
	switch code {
	case codes.Internal:
		s.log.Error("call failed", zap.String("call", id), zap.String("func", fn), zap.Error(err))
	case codes.Canceled:
	default:
		s.log.Debug("call refused", zap.String("call", id), zap.String("func", fn), zap.Stringer("code", code), zap.Error(err))
	}
}
