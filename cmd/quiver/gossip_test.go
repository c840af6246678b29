package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestGossipIsOffWithoutATokenUnlessAskedFor: any user of the host could
// join a cluster gossiping without a token and be sent its tasks, so a
// node without one gossips only when --gossip or --join asks it to.
func TestGossipIsOffWithoutATokenUnlessAskedFor(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    startFlags
		want string
	}{
		{"no token", startFlags{listen: "127.0.0.1:8815"}, ""},
		{"token", startFlags{listen: "127.0.0.1:8815", tokenFile: tok}, "127.0.0.1:8817"},
		{"join", startFlags{listen: "127.0.0.1:8815", join: []string{"127.0.0.1:9000"}}, "127.0.0.1:8817"},
		{"asked", startFlags{listen: "127.0.0.1:8815", gossip: "127.0.0.1:0"}, "127.0.0.1:0"},
		{"none", startFlags{listen: "127.0.0.1:8815", tokenFile: tok, gossip: "none"}, ""},
	} {
		cfg, err := tc.f.config(startCmd())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if cfg.Gossip != tc.want {
			t.Errorf("%s: gossip %q, want %q", tc.name, cfg.Gossip, tc.want)
		}
	}
}
