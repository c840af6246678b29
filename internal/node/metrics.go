// The metrics endpoint: its listener, its HTTP server, and its hooks
// into the Flight server.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/metrics"
)

// metricsEndpoint is the node's metrics HTTP server; nil when off.
type metricsEndpoint struct {
	m   *metrics.Metrics
	lis net.Listener
	srv *http.Server
	log *zap.Logger
}

// listenMetrics binds cfg.Metrics, or returns nil when it is empty.
func listenMetrics(cfg Config, log *zap.Logger) (*metricsEndpoint, error) {
	if cfg.Metrics == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("node: metrics: %w", err)
	}
	m := metrics.New(metrics.Config{Token: cfg.Token, Version: cfg.Version}, log)
	return &metricsEndpoint{m: m, lis: lis, log: log}, nil
}

// hook has the Flight server's calls counted.
func (e *metricsEndpoint) hook(fcfg *flight.Config) {
	if e != nil {
		fcfg.OnCall = e.m.OnCall
	}
}

// serve reports srv's status and serves until close.
func (e *metricsEndpoint) serve(srv *flight.Server) {
	if e == nil {
		return
	}
	e.m.SetStatus(srv.ClusterStatus)
	e.srv = &http.Server{Handler: e.m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := e.srv.Serve(e.lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serving metrics", zap.Error(err))
		}
	}()
}

// addr is the bound address, "" when off.
func (e *metricsEndpoint) addr() string {
	if e == nil {
		return ""
	}
	return e.lis.Addr().String()
}

// close stops serving: scrapes in flight get a second to finish.
func (e *metricsEndpoint) close() {
	if e == nil {
		return
	}
	if e.srv == nil {
		e.lis.Close()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.srv.Close()
	}
}
