// The store's private shared-memory directory: made under a parent,
// locked while the store lives, swept of dead nodes' directories.
package objectstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// DefaultShmParent is where a node makes its shared-memory directory
// unless told otherwise.
const DefaultShmParent = "/dev/shm"

// shmDir is a store's private shared-memory directory: user-only, named
// quiver-UID-*, locked (flock) while the store lives, so that the next
// node to start can tell a directory whose node died (killed, it could not
// remove it) and remove it with its files.
type shmDir struct {
	path string
	lock *os.File
}

// openShmDir makes a new private directory in parent, after removing the
// directories of this user's nodes that died. It fails where parent is
// missing or not writable.
func openShmDir(parent string) (*shmDir, error) {
	uid := os.Geteuid()
	removeStaleShmDirs(parent, uid)
	// Made under a name the sweep above ignores, locked, then renamed: a
	// node starting at the same time never sees it unlocked.
	tmp, err := os.MkdirTemp(parent, fmt.Sprintf(".quiver-%d-", uid))
	if err != nil {
		return nil, fmt.Errorf("objectstore: shared-memory directory: %w", err)
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
		return nil, fmt.Errorf("objectstore: shared-memory directory: %w", err)
	}
	dir := filepath.Join(parent, strings.TrimPrefix(filepath.Base(tmp), "."))
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("objectstore: shared-memory directory: %w", err)
	}
	return &shmDir{path: dir, lock: lock}, nil
}

// close removes the directory and every file in it. Clients that mapped
// a file keep their pages until they unmap them.
func (d *shmDir) close() error {
	err := os.RemoveAll(d.path)
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
