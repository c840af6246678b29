// Tests of the metrics endpoint on a real node: the documented metrics
// and the served ones agree, the token guards the data, and a failed
// call's id reaches its client and /api/status.
package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/loadtest"
)

// metricsNode is a node with metrics on a free port.
type metricsNode struct {
	tcp, metrics, token string
}

// startMetricsNode runs a node without Python workers until the test ends.
func startMetricsNode(t *testing.T, token string) metricsNode {
	t.Helper()
	return startMetricsNodeWith(t, token, -1, "")
}

// startMetricsNodeWith runs a node with workers Python workers on python.
func startMetricsNodeWith(t *testing.T, token string, workers int, python string) metricsNode {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var n metricsNode
	n.token = token
	ready := make(chan string, 1)
	cfg := Config{Listen: "127.0.0.1:0", Executors: 2, Workers: workers, Python: python, SpillDir: dir, ShmDir: "none",
		DrainTimeout: 10 * time.Second, Token: token, Metrics: "127.0.0.1:0",
		MetricsReady: func(addr string) { n.metrics = addr },
		Ready:        func(tcp, _, _ string) { ready <- tcp }}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, zaptest.NewLogger(t)) }()
	select {
	case n.tcp = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return n
}

// get fetches path from the metrics address with the node's token.
func (n metricsNode) get(t *testing.T, path string, withToken bool) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+n.metrics+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withToken && n.token != "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// load runs calls of function on the node for d, from streams at once.
func (n metricsNode) load(t *testing.T, function string, streams int, d time.Duration) *loadtest.Report {
	t.Helper()
	rep, err := loadtest.Run(context.Background(), loadtest.Config{Target: "grpc://" + n.tcp, Function: function,
		Token: n.token, Generate: "rows=1000,cols=int64:1", Concurrency: streams, Duration: d})
	if err != nil {
		t.Fatalf("loadtest %s: %v", function, err)
	}
	return rep
}

// status reads /api/status.
func (n metricsNode) status(t *testing.T) flight.ClusterStatus {
	t.Helper()
	code, body := n.get(t, "/api/status", true)
	if code != http.StatusOK {
		t.Fatalf("/api/status: HTTP %d: %s", code, body)
	}
	var st flight.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/api/status: %v", err)
	}
	return st
}

// servedMetrics are the metric families /metrics serves, name -> type.
func servedMetrics(t *testing.T, body []byte) map[string]string {
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			got[f[2]] = f[3]
		}
	}
	return got
}

// documentedMetrics are the rows of docs/metrics.md's tables: name -> type.
func documentedMetrics(t *testing.T) map[string]string {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\| `([a-z_:][a-z0-9_:]*)` \\| (counter|gauge|histogram|summary|untyped) \\|")
	doc := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			doc[m[1]] = m[2]
		}
	}
	return doc
}

// TestMetricsMatchDocs: every metric a node under load serves is in
// docs/metrics.md with its type, and every documented one is served.
func TestMetricsMatchDocs(t *testing.T) {
	n := startMetricsNode(t, "")
	n.load(t, "identity", 2, 300*time.Millisecond)
	code, body := n.get(t, "/metrics", false)
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	served, doc := servedMetrics(t, body), documentedMetrics(t)
	var missing, extra []string
	for name, typ := range served {
		if doc[name] != typ {
			missing = append(missing, name+" "+typ)
		}
	}
	for name, typ := range doc {
		if served[name] != typ {
			extra = append(extra, name+" "+typ)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("served but not documented (or with another type) in docs/metrics.md:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("documented in docs/metrics.md but not served:\n  %s", strings.Join(extra, "\n  "))
	}
	text := string(body)
	for _, want := range []string{`quiver_calls_total{code="OK",function="identity"}`, `quiver_tasks_total{state="done"}`,
		`quiver_cluster_members{state="alive"} 1`, `quiver_build_info{goversion="`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestMetricsToken: with a token, /metrics and /api/status need it, and
// the dashboard's page, which holds no data, does not.
func TestMetricsToken(t *testing.T) {
	n := startMetricsNode(t, "s3cret")
	for _, path := range []string{"/metrics", "/api/status"} {
		if code, _ := n.get(t, path, false); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: HTTP %d, want 401", path, code)
		}
		if code, _ := n.get(t, path, true); code != http.StatusOK {
			t.Errorf("%s with the token: HTTP %d, want 200", path, code)
		}
	}
	if code, body := n.get(t, "/", false); code != http.StatusOK || !strings.Contains(string(body), "<title>Quiver</title>") {
		t.Errorf("/ without the token: HTTP %d", code)
	}
}

// TestMetricsRefusesNetworkWithoutToken: like --listen, a metrics address
// beyond loopback needs a token.
func TestMetricsRefusesNetworkWithoutToken(t *testing.T) {
	cfg := Config{Listen: "127.0.0.1:0", Metrics: "0.0.0.0:0"}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "without a token") {
		t.Fatalf("validate: %v, want a refusal", err)
	}
	cfg = Config{Listen: "127.0.0.1:0", Metrics: "0.0.0.0:0", Token: "t"}
	if err := cfg.validate(); err != nil {
		t.Fatalf("validate with a token: %v", err)
	}
}

// callIDRe finds the call id that ends an error message.
var callIDRe = regexp.MustCompile(`\(call ([0-9a-f]{8})\)`)

// TestCallIDInErrors: a failed call's message names its call id, and
// /api/status lists the error under that id with its function and code.
func TestCallIDInErrors(t *testing.T) {
	n := startMetricsNode(t, "")
	rep := n.load(t, "no_such_function", 1, 50*time.Millisecond)
	var msg string
	for _, m := range rep.ErrorSamples {
		msg = m
	}
	id := callIDRe.FindStringSubmatch(msg)
	if id == nil {
		t.Fatalf("error %q names no call id", msg)
	}
	st := n.status(t)
	for _, e := range st.Nodes[0].RecentErrors {
		if e.Call == id[1] {
			if e.Function != "no_such_function" || e.Code != "NotFound" || !strings.Contains(e.Message, id[0]) {
				t.Fatalf("recent error %+v", e)
			}
			return
		}
	}
	t.Fatalf("call %s not among the recent errors %+v", id[1], st.Nodes[0].RecentErrors)
}
