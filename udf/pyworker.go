// One Python worker process, its control channel (fd 3) and its arena (fd 4).
package udf

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ErrWorkerDied: the worker running a task exited or broke the protocol.
// The task may be retried on another worker.
var ErrWorkerDied = errors.New("udf: python worker died")

// pyWorker is one `python -m quiver.worker` process. It runs one task at a
// time; the pool hands it to one caller at a time.
type pyWorker struct {
	id     int
	cmd    *exec.Cmd
	conn   net.Conn
	r      *bufio.Reader
	loaded map[string]bool // function IDs sent with LOAD
	seq    uint64          // number of the last TASK sent
	pid    int
	arena  *arena        // nil when the node could not make one: every task travels in frame bodies
	leases *net.UnixConn // the lease channel (fd 5), nil when the worker takes no leases (pylease.go)
	pinned bool          // the worker still holds arguments it read from the arena: leave the arena alone
	exited chan struct{} // closed when the process has been reaped
	once   sync.Once
	state  error // why the process ended, after exited is closed
}

// startWorker launches a worker and waits for its READY frame.
func startWorker(ctx context.Context, cfg PoolConfig, id int) (*pyWorker, error) {
	// Without an arena (no memfd here) the worker still works: every task
	// then travels in frame bodies.
	ar, _ := newArena()
	w, err := startProcess(ctx, cfg, id, ar)
	if err != nil && ar != nil {
		ar.close()
	}
	return w, err
}

func startProcess(ctx context.Context, cfg PoolConfig, id int, ar *arena) (*pyWorker, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("udf: socketpair: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "quiver-worker-parent")
	child := os.NewFile(uintptr(fds[1]), "quiver-worker-child")
	defer child.Close()
	leases, leaseChild := leaseChannel()
	if leaseChild != nil {
		defer leaseChild.Close()
	}
	conn, err := net.FileConn(parent)
	parent.Close()
	if err != nil {
		child.Close()
		return nil, fmt.Errorf("udf: worker channel: %w", err)
	}
	cmd := exec.Command(cfg.Python, "-m", "quiver.worker")
	cmd.Env = append(workerEnv(cfg.Env), "QUIVER_WORKER_ID="+strconv.Itoa(id))
	cmd.ExtraFiles = []*os.File{child, nil, leaseChild} // fd 3, fd 4 (below), fd 5 (nil: none)
	if ar != nil {
		cmd.ExtraFiles[1] = ar.f
	}
	cmd.Stdout, cmd.Stderr = cfg.Output, cfg.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a worker exits when fd 3 closes, so it never outlives the node
	if err := cmd.Start(); err != nil {
		conn.Close()
		if leases != nil {
			leases.Close()
		}
		return nil, fmt.Errorf("udf: starting python worker %q: %w", cfg.Python, err)
	}
	w := &pyWorker{id: id, cmd: cmd, conn: conn, r: bufio.NewReaderSize(conn, 1<<16),
		loaded: map[string]bool{}, pid: cmd.Process.Pid, arena: ar, exited: make(chan struct{})}
	go w.reap()
	stop := context.AfterFunc(ctx, w.kill)
	defer stop()
	timer := time.AfterFunc(cfg.StartTimeout, w.kill)
	defer timer.Stop()
	f, err := readFrame(w.r)
	if err == nil && f.kind != frameReady {
		err = fmt.Errorf("%w: first frame of kind %d, want READY", ErrProtocol, f.kind)
	}
	if err != nil {
		w.kill()
		<-w.exited
		if leases != nil {
			leases.Close()
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("udf: python worker %d did not start (%v, %v); is the quiver package installed for %s?", id, err, w.state, cfg.Python)
	}
	var ready struct {
		Lease bool `json:"lease"`
	}
	if f.decodeHeader(&ready) == nil && ready.Lease {
		w.leases = leases
	} else if leases != nil {
		leases.Close()
	}
	return w, nil
}

// workerEnv is the node's environment with single-threaded math libraries
// unless the node's own environment says otherwise.
func workerEnv(extra []string) []string {
	env := os.Environ()
	for _, k := range []string{"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"} {
		if _, ok := os.LookupEnv(k); !ok {
			env = append(env, k+"=1")
		}
	}
	return append(env, extra...)
}

func (w *pyWorker) reap() {
	w.state = w.cmd.Wait()
	w.conn.Close()
	close(w.exited)
}

// closeArena unmaps the worker's arena and closes its memfd, and closes
// its lease channel. Only the goroutine that holds the worker calls it,
// once the worker is done with.
func (w *pyWorker) closeArena() {
	if w.arena != nil {
		w.arena.close()
		w.arena = nil
	}
	if w.leases != nil {
		w.leases.Close()
		w.leases = nil
	}
}

// kill ends the process at once; reap notices.
func (w *pyWorker) kill() {
	w.once.Do(func() { _ = w.cmd.Process.Kill() })
}

func (w *pyWorker) alive() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// died wraps a channel failure as ErrWorkerDied with what the process said.
func (w *pyWorker) died(err error) error {
	w.kill()
	select {
	case <-w.exited:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("%w: worker %d (pid %d): %v (%v)", ErrWorkerDied, w.id, w.pid, err, w.state)
}

// shutdown asks the worker to exit, then kills it after grace.
func (w *pyWorker) shutdown(grace time.Duration) {
	_ = writeFrame(w.conn, frameShutdown, struct{}{}, nil)
	select {
	case <-w.exited:
	case <-time.After(grace):
		w.kill()
		<-w.exited
	}
	w.closeArena()
}
