// Package testpy finds, for tests, a Python interpreter that imports quiver,
// and makes registered function blobs with it.
package testpy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Python is an interpreter that imports quiver: $QUIVER_PYTHON, else the
// repository's .venv (root is the path from the test's package to the
// repository). Without one the test is skipped; make test always has one.
func Python(t testing.TB, root string) string {
	t.Helper()
	py := os.Getenv("QUIVER_PYTHON")
	if py == "" {
		py, _ = filepath.Abs(filepath.Join(root, ".venv/bin/python"))
	}
	if err := exec.Command(py, "-c", "import quiver.worker, cloudpickle").Run(); err != nil {
		t.Skipf("no interpreter with quiver installed (%s: %v); run make setup or set QUIVER_PYTHON", py, err)
	}
	return py
}

// Blob is the registered blob of function f, defined by src, of kind kind
// returning ret (a pyarrow expression): what Client.register sends.
func Blob(t testing.TB, py, src, kind, ret string) []byte {
	t.Helper()
	prog := src + `
import cloudpickle, sys, pyarrow as pa
sys.stdout.buffer.write(cloudpickle.dumps({"fn": f, "kind": "` + kind + `", "returns": ` + ret + `, "spark": None}))
`
	out, err := exec.Command(py, "-c", prog).Output()
	if err != nil {
		t.Fatalf("making blob: %v", err)
	}
	return out
}
