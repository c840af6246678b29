// The dashboard in a real headless Chromium, against a node under load.
package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// chromium finds a headless-capable Chromium, or skips the test.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH: make test installs Debian's chromium package where apt can; the dashboard is untested here")
	return ""
}

// artifactDir is where the test keeps its screenshot:
// $QUIVER_TEST_ARTIFACTS, else quiver-test-artifacts in the temp dir.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("QUIVER_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "quiver-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runChromium runs headless Chromium on url with args, for at most a
// minute, and returns its stdout.
func runChromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--user-data-dir=" + profile, "--virtual-time-budget=4000", "--window-size=1280,1400"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// TestDashboardInChromium: the page renders the node, its numbers as
// /api/status has them, the function under load and a failed call's id.
func TestDashboardInChromium(t *testing.T) {
	bin := chromium(t)
	workers := -1
	python := os.Getenv("QUIVER_PYTHON")
	if python != "" {
		workers = 2
	}
	n := startMetricsNodeWith(t, "", workers, python)
	failed := n.load(t, "no_such_function", 1, 50*time.Millisecond)
	var msg string
	for _, m := range failed.ErrorSamples {
		msg = m
	}
	id := callIDRe.FindStringSubmatch(msg)
	if id == nil {
		t.Fatalf("error %q names no call id", msg)
	}
	// The workers are up, so that the page and /api/status agree on them.
	for deadline := time.Now().Add(30 * time.Second); workers > 0 && n.status(t).Totals.Workers < workers; {
		if time.Now().After(deadline) {
			t.Fatal("the Python workers did not start within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A few concurrent calls, ending every 200 ms, for as long as the
	// browser looks: a call counts once it ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				n.load(t, "identity", 3, 200*time.Millisecond)
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	n.load(t, "identity", 3, 200*time.Millisecond) // some calls ended before the page first polls
	url := "http://" + n.metrics + "/"
	dom := runChromium(t, bin, url, "--dump-dom")
	st := n.status(t)
	if !strings.Contains(dom, `data-loaded="1"`) {
		t.Fatalf("the page never rendered a status:\n%s", dom)
	}
	for _, want := range []string{
		fmt.Sprintf(`id="nodes">%d<`, st.Totals.Nodes),
		fmt.Sprintf(`id="workers">%d<`, st.Totals.Workers),
		"<td>" + st.Nodes[0].Address + "</td>",
		"<td>identity</td>",
		"<td>" + id[1] + "</td>",
		"<td>no_such_function</td>",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	shot := filepath.Join(artifactDir(t), "dashboard.png")
	runChromium(t, bin, url, "--screenshot="+shot, "--hide-scrollbars")
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
