// Detached start and stop: a re-executed child with pid and log files.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/quiver-udf/quiver/internal/rundir"
)

// startDetached re-executes this binary with --block in a new session,
// logging to the run directory, and waits until the node answers.
func startDetached(cmd *cobra.Command, f startFlags) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logPath := filepath.Join(f.runDir, rundir.LogName)
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	args := append([]string{"start", "--block", "--run-dir", f.runDir, "--socket", f.socket}, os.Args[2:]...)
	child := exec.Command(self, args...)
	child.Stdout, child.Stderr = logFile, logFile
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()
	addr := "grpc://" + f.listen
	if f.socket != "none" {
		addr = "grpc+unix://" + f.socket
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the node exited at start (%v); its log %s says:\n%s", err, logPath, tail(logPath, 20))
		case <-deadline:
			_ = child.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the node did not answer within 15s; see %s", logPath)
		case <-time.After(50 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), time.Second)
		_, err := clusterStatus(ctx, addr, readToken(f.tokenFile, addr))
		cancel()
		if err == nil {
			fmt.Fprintf(cmd.OutOrStdout(), "quiver: node started, pid %d\n  address: %s\n  tcp:     %s\n  log:     %s\n",
				child.Process.Pid, addr, f.listen, logPath)
			if f.metrics != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "  metrics: http://%s/ (dashboard), /metrics\n", f.metrics)
			}
			return nil
		}
	}
}

func stopCmd() *cobra.Command {
	var dir string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the node of a run directory: drain calls in flight, then exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pidFile := filepath.Join(dir, rundir.PIDName)
			b, err := os.ReadFile(pidFile)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no node runs from %s (no %s)", dir, rundir.PIDName)
			}
			if err != nil {
				return err
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				return fmt.Errorf("%s holds no pid", pidFile)
			}
			if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
				if errors.Is(err, syscall.ESRCH) {
					os.Remove(pidFile)
					return fmt.Errorf("node %d is not running; removed its stale pid file", pid)
				}
				return err
			}
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) {
				if syscall.Kill(pid, 0) != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "quiver: node %d stopped\n", pid)
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			return fmt.Errorf("node %d still running after %s", pid, timeout)
		},
	}
	cmd.Flags().StringVar(&dir, "run-dir", rundir.Default(), "run directory of the node")
	cmd.Flags().DurationVar(&timeout, "timeout", 40*time.Second, "how long to wait for the node to exit")
	return cmd
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readToken reads a token file; an unreadable file gives no token, and the
// node answers Unauthenticated. Without a file it is $QUIVER_TOKEN, else,
// for a unix socket address, the user-only token file beside the socket.
func readToken(path, addr string) string {
	if path == "" {
		if t := os.Getenv("QUIVER_TOKEN"); t != "" {
			return t
		}
		sock, ok := strings.CutPrefix(addr, "grpc+unix://")
		if !ok {
			return ""
		}
		path = filepath.Join(filepath.Dir(sock), rundir.TokenName)
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o077 != 0 {
			return ""
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
