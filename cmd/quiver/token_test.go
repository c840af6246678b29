// readToken: an explicit file, $QUIVER_TOKEN, else the user-only file beside a socket.
package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	sock := "grpc+unix://" + filepath.Join(dir, "quiver.sock")
	beside := filepath.Join(dir, "token")
	other := filepath.Join(t.TempDir(), "other")
	if err := os.WriteFile(other, []byte("from-flag\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QUIVER_TOKEN", "")
	if got := readToken("", sock); got != "" {
		t.Fatalf("no file beside the socket: got %q", got)
	}
	if err := os.WriteFile(beside, []byte("beside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readToken("", sock); got != "" {
		t.Fatalf("a token file others may read was used: %q", got)
	}
	if err := os.Chmod(beside, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, addr, env, want string }{
		{"", sock, "", "beside"},
		{"", "grpc://127.0.0.1:8815", "", ""}, // never a local file for a TCP address
		{"", sock, "from-env", "from-env"},
		{other, sock, "from-env", "from-flag"},
	} {
		t.Setenv("QUIVER_TOKEN", c.env)
		if got := readToken(c.file, c.addr); got != c.want {
			t.Errorf("readToken(%q, %q) with $QUIVER_TOKEN=%q = %q, want %q", c.file, c.addr, c.env, got, c.want)
		}
	}
}
