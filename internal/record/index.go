// The on-disk format shared by the writer and Load: index lines and names.
package record

import (
	"fmt"
	"strings"
)

// IndexName is the name of a function folder's index file.
const IndexName = "index.jsonl"

// StreamExt ends the name of every call's stream file.
const StreamExt = ".arrows"

// Line is one line of index.jsonl: one recorded batch.
type Line struct {
	// Call is the call's id, unique in the recording.
	Call int64 `json:"call"`
	// Seq is the batch's position in the call's input, from 0. Batches
	// dropped from the recording leave gaps.
	Seq int64 `json:"seq"`
	// TNs is when the batch arrived, in nanoseconds since the recording
	// started.
	TNs int64 `json:"t_ns"`
	// Rows is the batch's number of rows.
	Rows int64 `json:"rows"`
	// Bytes is the batch's size in the stream file: its IPC messages,
	// dictionaries included, the schema at the start of the file not.
	Bytes int64 `json:"bytes"`
	// File is the stream file holding the batch, relative to the folder.
	File string `json:"file"`
}

// streamName is the stream file of call id.
func streamName(id int64) string { return fmt.Sprintf("%08d%s", id, StreamExt) }

// FolderName is the folder of function name in a recording: the name with
// every byte other than ASCII letters, digits, '_', '-' and '.' escaped as
// %XX, and a leading '.' escaped too (no hidden folders, no "..").
func FolderName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		case c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "%00"
	}
	return b.String()
}
