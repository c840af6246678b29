// quiver loadtest and start --record against a node run in-process: the
// exit verdict, the JSON report against docs/loadtest.md, the recording.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/internal/node"
	"github.com/quiver-udf/quiver/internal/record"
)

// startTestNode runs a node through node.Run on a temp socket, recording
// into recordDir if set; the returned func stops it and waits.
func startTestNode(t *testing.T, recordDir string) (addr string, stop func()) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	cfg := node.Config{Socket: filepath.Join(dir, "q.sock"), Executors: 2, Workers: -1, Record: recordDir,
		DrainTimeout: 10 * time.Second, Ready: func(string, string, string) { close(ready) }}
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, cfg, zaptest.NewLogger(t)) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("node.Run: %v", err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("node.Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return "grpc+unix://" + cfg.Socket, stop
}

// loadtestCLI runs `quiver loadtest args...` as main does, and returns its
// error (non-nil: a non-zero exit) and stdout.
func loadtestCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := loadtestCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// documentedFields reads the field names of the JSON report table in
// docs/loadtest.md.
func documentedFields(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../docs/loadtest.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([a-z0-9_.]+)` \\| (string|int|float|bool|object) \\|")
	var fields []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			in = strings.Contains(line, "The report")
			continue
		}
		if m := row.FindStringSubmatch(line); in && m != nil {
			fields = append(fields, m[1])
		}
	}
	if len(fields) < 20 {
		t.Fatalf("found %d fields in docs/loadtest.md's report table", len(fields))
	}
	sort.Strings(fields)
	return fields
}

// jsonFields lists a decoded report's keys, with the keys of documented
// nested objects (latency_us) as parent.child.
func jsonFields(m map[string]any, documented []string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k)
		sub, isObj := v.(map[string]any)
		if !isObj {
			continue
		}
		for _, d := range documented {
			if strings.HasPrefix(d, k+".") {
				for sk := range sub {
					out = append(out, k+"."+sk)
				}
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func readReport(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLoadtestCLI(t *testing.T) {
	recDir := filepath.Join(t.TempDir(), "rec")
	addr, stop := startTestNode(t, recDir)
	out := t.TempDir()

	// A good run: exit 0, the table, and the JSON with exactly the
	// documented fields.
	okJSON := filepath.Join(out, "ok.json")
	stdout, err := loadtestCLI(t, "--target", addr, "--function", "identity", "--generate", "rows=1000,cols=int64:1",
		"--concurrency", "2", "--duration", "200ms", "--warmup", "50ms", "--json", okJSON)
	if err != nil {
		t.Fatalf("a good run failed: %v\n%s", err, stdout)
	}
	for _, want := range []string{"requests", "throughput", "p99.9"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("the table lacks %q:\n%s", want, stdout)
		}
	}
	// --verify: right answers pass; identity's answers judged as
	// sha256_hex's are wrong, and the run fails.
	stdout, err = loadtestCLI(t, "--target", addr, "--function", "sha256_hex", "--generate", "rows=100,cols=utf8:1",
		"--duration", "100ms", "--verify")
	if err != nil || !strings.Contains(stdout, "wrong 0  missing 0  duplicated 0") {
		t.Fatalf("a verified run: %v\n%s", err, stdout)
	}
	stdout, err = loadtestCLI(t, "--target", addr, "--function", "identity", "--generate", "rows=100,cols=utf8:1",
		"--duration", "100ms", "--verify", "--verify-as", "sha256_hex")
	if err == nil || !strings.Contains(err.Error(), "wrong") {
		t.Fatalf("identity verified as sha256_hex passed: %v\n%s", err, stdout)
	}
	rep := readReport(t, okJSON)
	doc := documentedFields(t)
	if got := jsonFields(rep, doc); strings.Join(got, " ") != strings.Join(doc, " ") {
		t.Fatalf("JSON fields differ from docs/loadtest.md:\n json %v\n docs %v", got, doc)
	}
	if rep["sent"].(float64) != rep["succeeded"].(float64)+rep["failed"].(float64) || rep["failed"].(float64) != 0 {
		t.Fatalf("counts: sent %v succeeded %v failed %v", rep["sent"], rep["succeeded"], rep["failed"])
	}

	// An unknown function: a non-zero exit, NotFound in the report.
	badJSON := filepath.Join(out, "bad.json")
	_, err = loadtestCLI(t, "--target", addr, "--function", "no_such_function", "--generate", "cols=int64:1",
		"--duration", "100ms", "--json", badJSON)
	if err == nil {
		t.Fatal("a run whose every request failed exited 0")
	}
	bad := readReport(t, badJSON)
	if n, _ := bad["errors"].(map[string]any)["NotFound"].(float64); n == 0 || n != bad["sent"].(float64) {
		t.Fatalf("errors %v for %v sent, want all NotFound", bad["errors"], bad["sent"])
	}
	// ... which --max-error-rate 1 tolerates.
	if _, err := loadtestCLI(t, "--target", addr, "--function", "no_such_function", "--generate", "cols=int64:1",
		"--duration", "50ms", "--max-error-rate", "1"); err != nil {
		t.Fatalf("--max-error-rate 1: %v", err)
	}
	// Flags that cannot work fail before sending anything.
	for _, args := range [][]string{
		{"--function", "identity", "--generate", "cols=int64:1", "--max-error-rate", "2"},
		{"--function", "identity"},
		{"--function", "identity", "--generate", "cols=int64:1", "--replay", recDir},
		{"--function", "identity", "--generate", "rows=x"},
		{"--function", "identity", "--generate", "cols=int64:1", "--rate", "10", "--speed", "2"},
	} {
		if _, err := loadtestCLI(t, append([]string{"--target", addr}, args...)...); err == nil {
			t.Errorf("loadtest %v passed", args)
		}
	}

	// The node recorded the good run's batches (not the refused calls),
	// and the recording replays once with --duration 0.
	stop()
	rec, err := record.Load(recDir, "identity", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if len(rec.Batches) == 0 {
		t.Fatal("nothing recorded")
	}
	if _, err := os.Stat(filepath.Join(recDir, "no_such_function")); err == nil {
		t.Fatal("calls of an unknown function were recorded")
	}
	addr2, _ := startTestNode(t, "")
	replayJSON := filepath.Join(out, "replay.json")
	if _, err := loadtestCLI(t, "--target", addr2, "--function", "identity", "--replay", recDir, "--duration", "0",
		"--json", replayJSON); err != nil {
		t.Fatal(err)
	}
	if sent := readReport(t, replayJSON)["sent"].(float64); int(sent) != len(rec.Batches) {
		t.Fatalf("one pass sent %v of %d recorded batches", sent, len(rec.Batches))
	}
}

func TestStartRecordFlags(t *testing.T) {
	cmd := startCmd()
	if err := cmd.ParseFlags([]string{"--record", "rel/dir", "--record-max-bytes", "12345"}); err != nil {
		t.Fatal(err)
	}
	if def := cmd.Flags().Lookup("record-max-bytes").DefValue; def != "1073741824" {
		t.Fatalf("--record-max-bytes defaults to %s, want 1 GiB", def)
	}
	f := startFlags{record: "rel/dir", recordMax: 12345}
	cfg, err := f.config(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(cfg.Record) || !strings.HasSuffix(cfg.Record, "rel/dir") || cfg.RecordMaxBytes != 12345 {
		t.Fatalf("config %q %d", cfg.Record, cfg.RecordMaxBytes)
	}
}
