// Tests of the membership wiring: the bound gossip address, the refusals,
// and the fallback of a taken default port.
package node

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestGossipBeyondLoopbackNeedsAToken: as for --listen.
func TestGossipBeyondLoopbackNeedsAToken(t *testing.T) {
	for _, cfg := range []Config{
		{Listen: "127.0.0.1:0", Gossip: "0.0.0.0:0"},
		{Listen: "127.0.0.1:0", Join: []string{"127.0.0.1:8817"}},
	} {
		if err := cfg.validate(); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestGossipFallsBackFromATakenPort: a default gossip port that is taken
// becomes a free one; the Ready line names the real address.
func TestGossipFallsBackFromATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gossipc := make(chan string, 1)
	cfg := Config{Listen: "127.0.0.1:0", Socket: filepath.Join(dir, "q.sock"), Executors: 1, Workers: -1,
		SpillDir: dir, ShmDir: "none", DrainTimeout: 10 * time.Second,
		Gossip: taken.Addr().String(), GossipFallback: true,
		Ready: func(_, _, gossip string) { gossipc <- gossip }}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	select {
	case g := <-gossipc:
		if g == "" || g == cfg.Gossip || strings.HasSuffix(g, ":0") {
			t.Fatalf("gossip on %q (taken: %s)", g, cfg.Gossip)
		}
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	// Without the fallback, the taken port fails the start.
	cfg.GossipFallback = false
	cfg.Ready = nil
	if err := Run(context.Background(), cfg, zaptest.NewLogger(t)); err == nil {
		t.Fatal("a taken explicit gossip port did not fail the start")
	}
}
