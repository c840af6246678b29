// What a failed task does next: classify its error, then decide (retry,
// isolate its rows, null a row, or fail) as a pure function.
package scheduler

import (
	"errors"

	"github.com/quiver-udf/quiver/udf"
)

// Failure is the class of a task's error, which decides what may follow.
type Failure int

const (
	// FailNone: the task succeeded.
	FailNone Failure = iota
	// FailWorkerDied: the executor running the task died; the function
	// itself did not fail. Retryable.
	FailWorkerDied
	// FailFunction: the function failed on the task's rows (a Python
	// exception, an argument it refused). Never retried; under OnErrorNull
	// the failed rows are made null.
	FailFunction
	// FailBadResult: the function returned the wrong length or type. Never
	// retried, and never nulled row by row.
	FailBadResult
	// FailCancelled: the call ended (the client went away, a deadline
	// passed, another task failed). Nothing follows.
	FailCancelled
)

var failureNames = [...]string{"none", "died", "function", "badresult", "cancelled"}

func (f Failure) String() string { return failureNames[f] }

// Classify says which class err is, for a task of a call whose context
// has ended with ctxErr (nil while it runs): after the call ended, any
// error is FailCancelled, since a worker killed for that reason dies too.
func Classify(err, ctxErr error) Failure {
	switch {
	case err == nil:
		return FailNone
	case ctxErr != nil:
		return FailCancelled
	case errors.Is(err, udf.ErrWorkerDied):
		return FailWorkerDied
	case errors.Is(err, ErrBadResult):
		return FailBadResult
	}
	return FailFunction
}

// Action is what follows a task's evaluation.
type Action int

const (
	// Done: the evaluation succeeded; use its result.
	Done Action = iota
	// Fail: the task fails, and with it the call.
	Fail
	// Retry: evaluate the same rows again.
	Retry
	// Isolate: evaluate the task's rows one at a time, to null only the
	// rows that fail (OnErrorNull).
	Isolate
	// NullRow: the row, evaluated alone, is null and reports its error
	// (OnErrorNull).
	NullRow
)

var actionNames = [...]string{"done", "fail", "retry", "isolate", "null"}

func (a Action) String() string { return actionNames[a] }

// Attempt is one evaluation that ended: its class, how many evaluations
// of these rows were made so far (this one included), whether the rows are
// one row evaluated alone while isolating, and the call's options.
type Attempt struct {
	Failure  Failure
	Attempts int
	Row      bool
	Retries  int
	OnError  OnError
}

// Decide is the retry budget: a task whose executor died runs again up to
// Retries more times; a function's own failure is never retried, and
// under OnErrorNull its task's rows are isolated and each failed row made
// null; a bad result is isolated like a failure (the rows alone may be
// fine) but fails a row evaluated alone.
func Decide(a Attempt) Action {
	switch a.Failure {
	case FailNone:
		return Done
	case FailWorkerDied:
		if a.Attempts <= a.Retries {
			return Retry
		}
	case FailFunction, FailBadResult:
		switch {
		case a.OnError != OnErrorNull:
		case !a.Row:
			return Isolate
		case a.Failure == FailFunction:
			return NullRow
		}
	}
	return Fail
}
