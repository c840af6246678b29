// The default memory bound: a share of this machine's (or cgroup's) memory.
package objectstore

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
)

// DefaultMemoryShare is the share of memory DefaultMemoryBytes gives the
// store (Ray's object store takes 30% too).
const DefaultMemoryShare = 0.3

// fallbackMemoryBytes is the default where memory cannot be read.
const fallbackMemoryBytes = 1 << 30

// DefaultMemoryBytes is 30% of the machine's memory (MemTotal in
// /proc/meminfo), or of the cgroup's limit (cgroup v2 memory.max) where
// that is lower; 1 GiB where neither can be read.
func DefaultMemoryBytes() int64 {
	total := memTotal("/proc/meminfo")
	if lim := cgroupLimit("/sys/fs/cgroup/memory.max"); lim > 0 && (total <= 0 || lim < total) {
		total = lim
	}
	if total <= 0 {
		return fallbackMemoryBytes
	}
	return int64(float64(total) * DefaultMemoryShare)
}

// memTotal reads MemTotal from a meminfo file, in bytes; 0 if it cannot.
func memTotal(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// cgroupLimit reads a cgroup v2 memory.max, in bytes; 0 if there is none
// ("max") or it cannot be read.
func cgroupLimit(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
