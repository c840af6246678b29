// Tests of the default memory bound: the machine's memory and its cgroup
// limit.
package objectstore

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultMemory(t *testing.T) {
	dir := t.TempDir()
	mi := filepath.Join(dir, "meminfo")
	os.WriteFile(mi, []byte("MemFree:  100 kB\nMemTotal:       16384000 kB\n"), 0o600)
	if got := memTotal(mi); got != 16384000<<10 {
		t.Fatalf("memTotal %d", got)
	}
	cg := filepath.Join(dir, "memory.max")
	os.WriteFile(cg, []byte("max\n"), 0o600)
	if got := cgroupLimit(cg); got != 0 {
		t.Fatalf("cgroup max: %d", got)
	}
	os.WriteFile(cg, []byte("4294967296\n"), 0o600)
	if got := cgroupLimit(cg); got != 4<<30 {
		t.Fatalf("cgroup limit: %d", got)
	}
	if d := DefaultMemoryBytes(); d <= 0 {
		t.Fatalf("DefaultMemoryBytes %d", d)
	}
}
