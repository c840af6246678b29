// The quiver binary as an operator runs it: start detached, status, a call
// from a Flight client, a refused second start and an unsafe listen, stop.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/quiver-udf/quiver/internal/dial"
)

// hang bounds every command here; reaching it is a hang, never a pass.
const hang = 60 * time.Second

// buildQuiver compiles cmd/quiver into a temp directory.
func buildQuiver(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quiver")
	cmd := exec.Command("go", "build", "-o", bin, "-ldflags", "-X main.version=e2e-test", "./cmd/quiver")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// quiver runs the binary with args and returns its combined output and
// exit error.
func quiver(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("quiver %s did not return within %s:\n%s", strings.Join(args, " "), hang, out)
	}
	return string(out), err
}

// runDir makes a short user-only run directory (socket paths are short).
func runDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qe2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStartStatusCallStop(t *testing.T) {
	bin := buildQuiver(t)
	dir := runDir(t)
	sock := filepath.Join(dir, "quiver.sock")
	addr := "grpc+unix://" + sock

	out, err := quiver(t, bin, "start", "--run-dir", dir, "--listen", "127.0.0.1:0", "--workers", "-1",
		"--object-store-memory", strconv.Itoa(64<<20))
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	pid := readPID(t, dir)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %o, want 600 (user-only)", perm)
	}

	out, err = quiver(t, bin, "status", "--address", addr, "--json")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, out)
	}
	if !bytes.Contains([]byte(out), []byte("e2e-test")) {
		t.Errorf("status does not report the binary's version e2e-test:\n%s", out)
	}

	echo(t, addr, 10_000)

	// A second node on the same run directory is refused; the first serves on.
	if out, err := quiver(t, bin, "start", "--block", "--run-dir", dir, "--listen", "127.0.0.1:0", "--workers", "-1"); err == nil {
		t.Fatalf("a second node on a live socket started:\n%s", out)
	}
	echo(t, addr, 3)

	out, err = quiver(t, bin, "stop", "--run-dir", dir)
	if err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Errorf("node %d still runs after stop", pid)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after stop: %v", err)
	}
}

func TestNetworkListenWithoutTokenIsRefused(t *testing.T) {
	bin := buildQuiver(t)
	dir := runDir(t)
	out, err := quiver(t, bin, "start", "--block", "--run-dir", dir, "--listen", "0.0.0.0:0", "--workers", "-1")
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("start on 0.0.0.0 without a token: err %v, want a non-zero exit\n%s", err, out)
	}
	if !strings.Contains(out, "--token-file") {
		t.Errorf("the refusal does not say how to fix it (--token-file):\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "quiver.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused node left a socket: %v", err)
	}
}

func readPID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "quiver.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// echo calls identity over DoExchange with rows int64 rows and checks that
// exactly those rows come back, in order.
func echo(t *testing.T, addr string, rows int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hang)
	defer cancel()
	c, err := dial.Client(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.DoExchange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bld := array.NewInt64Builder(mem)
	for i := 0; i < rows; i++ {
		bld.Append(int64(i) * 7)
	}
	col := bld.NewArray()
	bld.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(rows))
	col.Release()
	defer rec.Release()

	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"identity"}})
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	r, err := flight.NewRecordReader(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	got := 0
	for r.Next() {
		out := r.RecordBatch()
		vals := out.Column(0).(*array.Int64)
		for i := 0; i < vals.Len(); i++ {
			if vals.Value(i) != int64(got+i)*7 {
				t.Fatalf("row %d came back as %d, want %d", got+i, vals.Value(i), int64(got+i)*7)
			}
		}
		got += vals.Len()
	}
	if err := r.Err(); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if got != rows {
		t.Fatalf("identity returned %d rows for %d", got, rows)
	}
}

// waitGone waits until process pid has exited, failing the test at hang.
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s: node %d still runs after %s", what, pid, hang)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWatchPIDEndsTheNodeWithItsOwner(t *testing.T) {
	bin := buildQuiver(t)
	dir := runDir(t)
	owner := exec.Command("sleep", "300")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer owner.Process.Kill()
	out, err := quiver(t, bin, "start", "--run-dir", dir, "--listen", "", "--workers", "-1",
		"--watch-pid", strconv.Itoa(owner.Process.Pid))
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	pid := readPID(t, dir)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	echo(t, "grpc+unix://"+filepath.Join(dir, "quiver.sock"), 5)
	if err := owner.Process.Kill(); err != nil { // as kill -9 would
		t.Fatal(err)
	}
	_ = owner.Wait()
	waitGone(t, pid, "owner killed")
	if _, err := os.Stat(filepath.Join(dir, "quiver.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestIdleExitWaitsForTheLastClient(t *testing.T) {
	const idle = 3 * time.Second
	bin := buildQuiver(t)
	dir := runDir(t)
	out, err := quiver(t, bin, "start", "--run-dir", dir, "--listen", "", "--workers", "-1",
		"--idle-exit", idle.String())
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	pid := readPID(t, dir)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })

	// A client that keeps its connection keeps the node, past the idle time.
	c, err := dial.Client("grpc+unix://" + filepath.Join(dir, "quiver.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := c.DoAction(ctx, &flight.Action{Type: "health"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2*idle + time.Second)
	if syscall.Kill(pid, 0) != nil {
		t.Fatalf("the node exited after %s with a client connected", 2*idle+time.Second)
	}
	c.Close()
	waitGone(t, pid, "last client gone")
}
