// Per-call metrics: how many calls ended, and how long they took, by
// function and gRPC code.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiver-udf/quiver/flight"
)

// callBuckets are the call-duration histogram's upper bounds, in seconds:
// from a native call on a small batch to a long Python call.
var callBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// Calls counts the node's calls. Observe is safe for concurrent use.
type Calls struct {
	total    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newCalls() *Calls {
	return &Calls{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quiver_calls_total",
			Help: "Calls of functions that ended, by function and gRPC code.",
		}, []string{"function", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quiver_call_duration_seconds",
			Help:    "Duration of calls of functions, by function and gRPC code.",
			Buckets: callBuckets,
		}, []string{"function", "code"}),
	}
}

// Observe counts one ended call: a flight.Config.OnCall.
func (c *Calls) Observe(r flight.CallRecord) {
	code := r.Code.String()
	c.total.WithLabelValues(r.Function, code).Inc()
	c.duration.WithLabelValues(r.Function, code).Observe(r.Duration.Seconds())
}
