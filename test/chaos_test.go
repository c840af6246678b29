// The chaos soak: a three-node cluster under verified load (quiver
// loadtest --verify on the built-ins, and the Python client calling a
// Python function that spills to peers, every row checked) while faults
// hit it: Python workers killed, peers killed and restarted, a spill disk
// filled, a peer paused past the failure detector's timeout. Errors with
// documented codes are allowed; a wrong, lost or duplicated row is not,
// nor an undocumented code, nor a cluster that does not serve at the end.
//
// go test -run TestChaos ./test -chaos-seconds 600 (make chaos); the
// default, 60 s, runs in make test.
package test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quiver-udf/quiver/internal/testpy"
)

var (
	chaosSeconds = flag.Int("chaos-seconds", 60, "length of TestChaos's soak, seconds")
	chaosReport  = flag.String("chaos-report", "", "also write TestChaos's report to this file")
)

// documentedCodes are the codes of docs/protocol.md's error table.
var documentedCodes = map[string]bool{
	"NotFound": true, "AlreadyExists": true, "FailedPrecondition": true, "InvalidArgument": true,
	"Unauthenticated": true, "ResourceExhausted": true, "Unavailable": true, "DeadlineExceeded": true,
	"Unimplemented": true, "Internal": true,
}

// chaosTally is what the soak counted, from every source.
type chaosTally struct {
	mu                      sync.Mutex
	requests, rows          int64            // answered requests (loadtest batches, Python calls) and their rows
	verified                int64            // rows checked against a reference or x*3
	errors                  map[string]int64 // failed requests by gRPC code (source-prefixed when undocumented)
	samples                 map[string]string
	wrong, lost, duplicated int64
	faults                  map[string]int
	rounds, pyCalls         int64
}

func (c *chaosTally) addError(code string, n int64, sample string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errors[code] += n
	if _, ok := c.samples[code]; !ok && sample != "" {
		c.samples[code] = sample
	}
}

func (c *chaosTally) fault(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults[kind]++
}

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos soak is not short")
	}
	soak := time.Duration(*chaosSeconds) * time.Second
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	logs := t.TempDir()
	cl := startChaosCluster(t, bin, py, logs)
	registerSlow(t, py, cl.nodes[0].n)

	tally := &chaosTally{errors: map[string]int64{}, samples: map[string]string{}, faults: map[string]int{}}
	start := time.Now()
	end := start.Add(soak)
	var wg sync.WaitGroup
	// Two loadtest loops, three verified streams each, over the built-ins
	// and the three nodes in turn.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.loadtestLoop(t, tally, i, end)
		}()
	}
	// The Python client on the first node (never killed: it is the origin
	// whose tasks spill to the others).
	pyOut := filepath.Join(logs, "pyclient.json")
	pyCmd := startChaosClient(t, py, logs, "pyclient", "call", cl.nodes[0].n.client, soak, pyOut)

	// A Spark job on the first node too, in soaks long enough to pay for
	// Spark's start (make chaos); the short soak of make test leaves it out.
	var sparkCmd *exec.Cmd
	sparkOut := filepath.Join(logs, "spark.json")
	if soak >= sparkSoak {
		sparkCmd = startChaosClient(t, py, logs, "spark", "spark", cl.nodes[0].n.client, soak-30*time.Second, sparkOut)
	}

	cl.faults(t, tally, end)
	wg.Wait()
	if err := pyCmd.Wait(); err != nil {
		out, _ := os.ReadFile(filepath.Join(logs, "pyclient.log"))
		t.Fatalf("the Python client failed: %v\n%s", err, out)
	}
	tally.addPython(t, pyOut, "slow")
	if sparkCmd != nil {
		if err := sparkCmd.Wait(); err != nil {
			out, _ := os.ReadFile(filepath.Join(logs, "spark.log"))
			t.Fatalf("the Spark job failed: %v\n%s", err, out)
		}
		tally.addPython(t, sparkOut, "spark")
	}
	serving := cl.servingAtEnd(t, tally)

	report := tally.report(soak, time.Since(start), serving)
	t.Log("\n" + report)
	if *chaosReport != "" {
		if err := os.WriteFile(*chaosReport, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	if tally.wrong+tally.lost+tally.duplicated > 0 {
		t.Errorf("rows wrong %d, lost %d, duplicated %d: want none", tally.wrong, tally.lost, tally.duplicated)
	}
	for code := range tally.errors {
		if !documentedCodes[code] {
			t.Errorf("errors with an undocumented code: %s (%d): %s", code, tally.errors[code], tally.samples[code])
		}
	}
	for _, kind := range faultKinds {
		if tally.faults[kind] == 0 && kind != skippedFault {
			t.Errorf("the soak never made the fault %q: make it longer", kind)
		}
	}
	if !serving {
		t.Error("the cluster was not serving at the end")
	}
	if tally.requests == 0 {
		t.Error("no request was answered")
	}
}

// verifyFunctions are the built-ins the loadtest loops verify, with input.
var verifyFunctions = []struct{ name, spec string }{
	{"identity", "rows=2000,cols=int64:1,batches=3"},
	{"haversine_km", "rows=2000,cols=float64:4,batches=2"},
	{"levenshtein", "rows=500,cols=utf8:2"},
	{"sha256_hex", "rows=1000,cols=utf8:1"},
	{"jaro_winkler", "rows=500,cols=utf8:2"},
	{"geohash_encode", "rows=1000,cols=float64:2,int32:1"},
	{"identity", "rows=1000,cols=utf8:1"},
}

// loadtestLoop runs `quiver loadtest --verify` in rounds of a few seconds
// until end, each round on the next function and node, and adds up the
// reports.
func (cl *chaosCluster) loadtestLoop(t *testing.T, tally *chaosTally, loop int, end time.Time) {
	for round := loop; time.Until(end) > time.Second; round += 2 {
		fn := verifyFunctions[round%len(verifyFunctions)]
		target := cl.nodes[round%len(cl.nodes)].address()
		d := min(6*time.Second, time.Until(end))
		out := filepath.Join(cl.logs, fmt.Sprintf("loadtest-%d-%d.json", loop, round))
		cmd := exec.Command(cl.bin, "loadtest", "--target", target, "--token", chaosToken, "--function", fn.name,
			"--generate", fn.spec, "--concurrency", "3", "--duration", d.String(), "--rows-per-task", "250",
			"--verify", "--json", out, "--max-error-rate", "1")
		text, err := cmd.CombinedOutput()
		var rep struct {
			Succeeded    int64             `json:"succeeded"`
			Rows         int64             `json:"rows"`
			Verified     int64             `json:"verified_rows"`
			Wrong        int64             `json:"wrong_rows"`
			Missing      int64             `json:"missing_rows"`
			Duplicated   int64             `json:"duplicated_rows"`
			Errors       map[string]int64  `json:"errors"`
			ErrorSamples map[string]string `json:"error_samples"`
			VerifySample string            `json:"verify_sample"`
		}
		b, rerr := os.ReadFile(out)
		if rerr != nil {
			// No report: it measured nothing (a round against a node that
			// was down throughout) or could not run at all.
			if !strings.Contains(string(text), "no request was measured") {
				t.Errorf("loadtest %s on %s: %v\n%s", fn.name, target, err, text)
			}
			continue
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Errorf("loadtest report %s: %v", out, err)
			continue
		}
		tally.mu.Lock()
		tally.rounds++
		tally.requests += rep.Succeeded
		tally.rows += rep.Rows
		tally.verified += rep.Verified
		tally.wrong += rep.Wrong
		tally.lost += rep.Missing
		tally.duplicated += rep.Duplicated
		if rep.VerifySample != "" {
			tally.samples["verify "+fn.name] = rep.VerifySample
		}
		tally.mu.Unlock()
		for code, n := range rep.Errors {
			tally.addError(code, n, fn.name+": "+rep.ErrorSamples[code])
		}
	}
}

// sparkSoak is the shortest soak that runs a Spark job as well.
const sparkSoak = 2 * time.Minute

// addPython adds a Python client's summary (chaos_client.py), named what
// in error samples.
func (c *chaosTally) addPython(t *testing.T, path, what string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the Python client wrote no summary: %v", err)
	}
	var rep struct {
		Calls, OK, Rows, Wrong, Lost, Duplicated int64
		Errors                                   map[string]int64
		Samples                                  map[string]string
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.requests += rep.OK
	c.rows += rep.Rows
	c.verified += rep.Rows - rep.Lost
	c.wrong += rep.Wrong
	c.lost += rep.Lost
	c.duplicated += rep.Duplicated
	c.pyCalls += rep.OK
	c.mu.Unlock()
	for code, n := range rep.Errors {
		c.addError(code, n, what+": "+rep.Samples[code])
	}
}

func (c *chaosTally) report(soak, took time.Duration, serving bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos soak   %s of load and faults (%s in all), 3 nodes\n", soak, took.Round(time.Second))
	fmt.Fprintf(&b, "served       %d requests (batches of %d loadtest rounds, and %d Python calls and Spark queries), %d rows, all verified: %d\n",
		c.requests, c.rounds, c.pyCalls, c.rows, c.verified)
	fmt.Fprintf(&b, "rows         wrong %d  lost %d  duplicated %d\n", c.wrong, c.lost, c.duplicated)
	fmt.Fprintf(&b, "errors       %s\n", joinCounts(c.errors))
	fmt.Fprintf(&b, "faults       %s\n", joinCounts(c.faults))
	fmt.Fprintf(&b, "serving      %v at the end\n", serving)
	keys := make([]string, 0, len(c.samples))
	for k := range c.samples {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s: %s\n", k, oneLineText(c.samples[k]))
	}
	return b.String()
}

func joinCounts[V int | int64](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func oneLineText(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 240 {
		s = s[:240] + "..."
	}
	return s
}

// startChaosClient runs chaos_client.py's mode against the node at address
// for d, writing its report to out and its output to LOGS/NAME.log; it is
// killed at the test's end if still running.
func startChaosClient(t *testing.T, py, logs, name, mode, address string, d time.Duration, out string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(py, "chaos_client.py", mode, address, fmt.Sprint(d.Seconds()), out)
	cmd.Env = append(os.Environ(), "QUIVER_TOKEN="+chaosToken)
	log, _ := os.Create(filepath.Join(logs, name+".log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd
}
