// Package scenario runs scenario files for the deterministic cores
// (scheduler, objectstore): a list of commands, each followed by the lines
// it must print, each of those prefixed by "> ". Blank lines and lines
// starting with # are ignored.
package scenario

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Step is one command and what it must print.
type Step struct {
	Line int    // line number of the command in its file
	Cmd  string // the command line, trimmed
	Want []string
}

// Read parses a scenario file.
func Read(path string) ([]Step, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var steps []Step
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, ">"):
			if len(steps) == 0 {
				return nil, fmt.Errorf("%s:%d: expectation before any command", path, n)
			}
			s := &steps[len(steps)-1]
			s.Want = append(s.Want, strings.TrimSpace(strings.TrimPrefix(line, ">")))
		default:
			steps = append(steps, Step{Line: n, Cmd: line})
		}
	}
	return steps, sc.Err()
}

// Run runs every file matching pattern as a subtest. For each file it
// calls start, which returns the function that executes one step and
// returns what it printed; a step whose output differs from its
// expectation fails the subtest, naming the file and line.
func Run(t *testing.T, pattern string, start func(t *testing.T) func(Step) []string) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario files match %s: %v", pattern, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			steps, err := Read(f)
			if err != nil {
				t.Fatal(err)
			}
			exec := start(t)
			for _, s := range steps {
				got := exec(s)
				if strings.Join(got, "\n") != strings.Join(s.Want, "\n") {
					t.Errorf("%s:%d: %s\n got: %q\nwant: %q", f, s.Line, s.Cmd, got, s.Want)
				}
			}
		})
	}
}
