// Package rundir locates the node's run directory (socket, pid and log
// files) and keeps it private to the user.
package rundir

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// File names inside a run directory.
const (
	SocketName = "quiver.sock"
	PIDName    = "quiver.pid"
	LogName    = "quiver.log"
	// TokenName is the token file clients of the socket beside it read
	// when given none (user-only; quiver.spark.setup_cluster and the
	// Databricks init script write it).
	TokenName = "token"
)

// Default returns $QUIVER_RUN_DIR, else $XDG_RUNTIME_DIR/quiver, else
// /tmp/quiver-<uid> (not $TMPDIR: the Python client looks there too).
func Default() string {
	if d := os.Getenv("QUIVER_RUN_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "quiver")
	}
	return filepath.Join("/tmp", "quiver-"+strconv.Itoa(os.Getuid()))
}

// Ensure creates dir with mode 0700 if needed and refuses a directory that
// another user owns or that others may write to or read.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("run directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("run directory %s has mode %s; it must be private to its user (chmod 700)", dir, fi.Mode().Perm())
	}
	if uid, ok := ownerUID(fi); ok && uid != os.Getuid() {
		return fmt.Errorf("run directory %s belongs to uid %d, not to this user (%d)", dir, uid, os.Getuid())
	}
	return nil
}
