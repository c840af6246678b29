// The registry and the HTTP handler: /metrics, /api/status and the
// dashboard, behind the node's token.
package metrics

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/flight"
)

// Config of a node's metrics.
type Config struct {
	// Status is the node's status snapshot (flight.Server.ClusterStatus).
	// It is bound after the server is built, so it may be set later
	// through Metrics.SetStatus; until then the node reports nothing.
	Status func() flight.ClusterStatus
	// Token, when not empty, is required on every path as
	// "Authorization: Bearer <token>".
	Token string
	// Version is quiver_build_info's version label.
	Version string
}

// Metrics is a node's registry and its call metrics.
type Metrics struct {
	cfg   Config
	reg   *prometheus.Registry
	calls *Calls
	log   *zap.Logger
}

// New builds the registry: the node's collector, the call metrics,
// quiver_build_info and Go's runtime and process collectors.
func New(cfg Config, log *zap.Logger) *Metrics {
	if log == nil {
		log = zap.NewNop()
	}
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry(), calls: newCalls(), log: log}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "quiver_build_info",
		Help: "Always 1; the node's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	info.WithLabelValues(cfg.Version, runtime.Version()).Set(1)
	m.reg.MustRegister(collector{status: m.status}, m.calls.total, m.calls.duration, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetStatus sets Config.Status; call it before serving.
func (m *Metrics) SetStatus(f func() flight.ClusterStatus) { m.cfg.Status = f }

// OnCall is the flight.Config.OnCall that counts calls.
func (m *Metrics) OnCall(r flight.CallRecord) { m.calls.Observe(r) }

func (m *Metrics) status() flight.ClusterStatus {
	if m.cfg.Status == nil {
		return flight.ClusterStatus{}
	}
	return m.cfg.Status()
}

// Handler serves /metrics, /api/status and the dashboard at /.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(m.log)}))
	mux.HandleFunc("GET /api/status", m.serveStatus)
	mux.HandleFunc("GET /{$}", serveDashboard)
	return m.auth(mux)
}

func (m *Metrics) serveStatus(w http.ResponseWriter, _ *http.Request) {
	body, err := json.Marshal(m.status())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// auth requires the token, when there is one, on every path but the
// dashboard's page, which holds no data: a browser cannot send the header
// when it opens a page, so the page asks for the token and sends it with
// its requests for /api/status.
func (m *Metrics) auth(next http.Handler) http.Handler {
	if m.cfg.Token == "" {
		return next
	}
	want := []byte("Bearer " + m.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			next.ServeHTTP(w, r)
			return
		}
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="quiver"`)
			http.Error(w, "missing or bad token: send header Authorization: Bearer <token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
