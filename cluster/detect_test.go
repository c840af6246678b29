// How long a member that stops without a word takes to be declared dead:
// the tuned detector against memberlist's DefaultLANConfig.
package cluster

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// detection starts size members on loopback with tune (nil: tuneLAN),
// stops one without leaving, and returns how long until another reports
// it dead.
func detection(tb testing.TB, size int, tune func(*memberlist.Config)) time.Duration {
	tb.Helper()
	nodes := make([]*node, size)
	for i := range nodes {
		cfg := Config{Name: fmt.Sprint("n", i), tune: tune}
		if i > 0 {
			cfg.Join = []string{nodes[0].Self().GossipAddr}
		}
		nodes[i] = start(tb, cfg, Load{})
	}
	for _, n := range nodes {
		waitFor(tb, 30*time.Second, "all members alive", func() bool { return count(n.Members(), StateAlive) == size })
	}
	victim := nodes[size-1]
	begin := time.Now()
	victim.Close()
	waitEvent(tb, nodes[0], Dead, victim.Self().Name, 2*time.Minute)
	took := time.Since(begin)
	for _, n := range nodes[:size-1] {
		n.Close()
	}
	return took
}

// TestDetectionTime logs the tuned detector's time to declare a stopped
// member dead in a cluster of three (and memberlist's defaults' with
// QUIVER_DETECTION_DEFAULTS=1: they take several seconds). Timing never
// fails it; a member never declared dead does.
func TestDetectionTime(t *testing.T) {
	t.Logf("tuned (probe %s, timeout %s, suspicion x%d): dead after %s", probeInterval, probeTimeout, suspicionMult,
		detection(t, 3, nil))
	if os.Getenv("QUIVER_DETECTION_DEFAULTS") != "" {
		t.Logf("memberlist DefaultLANConfig: dead after %s", detection(t, 3, func(*memberlist.Config) {}))
	}
}

// BenchmarkDetection reports ms to declare a stopped member dead, for
// both detectors, in clusters of 3 (and 8 for the tuned one: the default
// one's 8 members take longer than the 30 s the test allows to converge here).
// Run: go test -run - -bench Detection -benchtime 3x ./cluster/
func BenchmarkDetection(b *testing.B) {
	for _, d := range []struct {
		name  string
		tune  func(*memberlist.Config)
		sizes []int
	}{{"tuned", nil, []int{3, 8}}, {"lan-default", func(*memberlist.Config) {}, []int{3}}} {
		for _, size := range d.sizes {
			b.Run(fmt.Sprintf("%s/nodes=%d", d.name, size), func(b *testing.B) {
				var total time.Duration
				for range b.N {
					total += detection(b, size, d.tune)
				}
				b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/detect")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
	// memberlist's probes in flight outlive Shutdown by up to a probe
	// interval (1 s by default): let them end before TestMain's leak check.
	time.Sleep(2 * time.Second)
}
