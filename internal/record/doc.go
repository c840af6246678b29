// Package record records the input of a node's calls to disk, and reads
// such a recording back for replay (quiver start --record, quiver loadtest
// --replay).
//
// Layout of a recording directory DIR:
//
//	DIR/<function>/<call>.arrows   one Arrow IPC stream per call: the input
//	                               schema, then every recorded batch
//	DIR/<function>/index.jsonl     one JSON line per recorded batch (Line)
//
// The function's folder name is its name, with bytes other than letters,
// digits, '_', '-' and '.' escaped as %XX (FolderName). Call ids are
// unique across the directory and grow with time, across restarts too: a
// recorder that finds a recording continues it, ids and clock included.
//
// Use: New starts a Recorder and its writer goroutine. For every call,
// Begin returns a *Call; the goroutine that reads the call's input offers
// each batch to it (Offer) and ends it (Close). Offer never blocks and
// never fails: it retains the batch and puts it on a bounded queue, or,
// when the queue is full, drops it from the recording and counts the drop
// (the index then skips that seq, as it does for any batch left out). The writer goroutine encodes the batch
// with arrow-go's ipc.Writer, appends its index line and releases it.
// Recorder.Close drains the queue, ends every stream and waits for the
// writer; Offer and Close on a Call after that do nothing, so calls that
// outlive the recorder are safe. A nil *Recorder and a nil *Call do
// nothing either, which is how a node that does not record runs.
//
// Size bound: before a batch is written, whole finished calls are deleted,
// oldest first, until it fits under Config.MaxBytes (the files of the
// directory, streams and indexes). Calls in progress are never deleted: when
// only they are left, their batches are left out (counted, logged once per
// LogEvery) until one ends, so a recording of long calls keeps their
// beginnings. Index lines of deleted calls are ignored by Load, and the
// writer rewrites an index once most of it is such lines.
//
// Load reads a recording back: every batch whose stream is on disk, with
// its index line, in arrival order.
package record
