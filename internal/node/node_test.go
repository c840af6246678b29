// Tests of a node's wiring: what it binds and makes, and that a node that
// fails to start leaves nothing behind.
package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestRunServesAndCleansUp: a node on TCP port 0 and a socket reports the
// bound address, makes its shared-memory directory, and removes the
// socket and the directory when it stops.
func TestRunServesAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	shm := filepath.Join(dir, "shm")
	if err := os.Mkdir(shm, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type ready struct{ tcp, socket string }
	readyc := make(chan ready, 1)
	cfg := Config{Listen: "127.0.0.1:0", Socket: filepath.Join(dir, "q.sock"), Executors: 1, Workers: -1,
		SpillDir: dir, ShmDir: shm, DrainTimeout: 10 * time.Second,
		Ready: func(tcp, socket, _ string) { readyc <- ready{tcp, socket} }}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	var r ready
	select {
	case r = <-readyc:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	if strings.HasSuffix(r.tcp, ":0") || r.socket != cfg.Socket {
		t.Fatalf("ready with tcp %q, socket %q", r.tcp, r.socket)
	}
	for _, addr := range []struct{ network, addr string }{{"tcp", r.tcp}, {"unix", r.socket}} {
		c, err := net.Dial(addr.network, addr.addr)
		if err != nil {
			t.Fatalf("dialing %s %s: %v", addr.network, addr.addr, err)
		}
		c.Close()
	}
	if ents, _ := os.ReadDir(shm); len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "quiver-") {
		t.Fatalf("shared-memory parent holds %v, want the node's directory", ents)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(cfg.Socket); !os.IsNotExist(err) {
		t.Fatalf("the socket is still there after the node stopped: %v", err)
	}
	if ents, _ := os.ReadDir(shm); len(ents) != 0 {
		t.Fatalf("left in the shared-memory parent after the node stopped: %v", ents)
	}
}

// TestRunFailsBeforeBinding: a node whose setup fails (a TLS key that is
// not there) returns the error without binding its socket or leaving its
// shared-memory directory; one whose socket a live node serves returns
// the error and removes what it made.
func TestRunFailsBeforeBinding(t *testing.T) {
	dir := t.TempDir()
	shm := filepath.Join(dir, "shm")
	if err := os.Mkdir(shm, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Socket: filepath.Join(dir, "q.sock"), Workers: -1, SpillDir: dir, ShmDir: shm,
		TLSCert: filepath.Join(dir, "missing.crt"), TLSKey: filepath.Join(dir, "missing.key")}
	if err := Run(context.Background(), cfg, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("Run with a missing TLS key: %v", err)
	}
	if _, err := os.Stat(cfg.Socket); !os.IsNotExist(err) {
		t.Fatalf("a node that failed bound its socket: %v", err)
	}

	live, err := net.Listen("unix", cfg.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() { // answer the dial that probes for a live node
		if c, err := live.Accept(); err == nil {
			c.Close()
		}
	}()
	cfg.TLSCert, cfg.TLSKey = "", ""
	if err := Run(context.Background(), cfg, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Fatalf("Run on a live node's socket: %v", err)
	}
	if ents, _ := os.ReadDir(shm); len(ents) != 0 {
		t.Fatalf("a node that failed left %v in the shared-memory parent", ents)
	}
}
