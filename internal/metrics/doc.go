// Package metrics serves a node's Prometheus metrics, its live dashboard
// and its status as JSON, on one HTTP address (quiver start --metrics).
//
// Almost every metric is read at scrape time from the snapshot the
// cluster_status action answers (flight.Server.ClusterStatus): the
// scheduler's, the worker pool's and the object store's counters and the
// membership. Nothing on the hot path changes for them. The one exception
// is per call: Calls.Observe, given to flight.Config.OnCall, counts each
// call and its duration by function and gRPC code when it ends (one
// counter and one histogram observation per call, never per batch).
// flight caps the function names it reports (flight.MaxReportedFunctions,
// then "other"), so the label stays bounded.
//
// New builds a private prometheus.Registry (no global state: two nodes in
// one process do not collide) with the node's collector, the call
// metrics, quiver_build_info, and Go's runtime and process collectors.
// Handler serves:
//
//   - /metrics: the Prometheus text format;
//   - /api/status: the same JSON as the cluster_status action;
//   - /: the dashboard, one self-contained HTML page (dashboard.html,
//     embedded) that polls /api/status every second.
//
// With a token, /metrics and /api/status require "Authorization: Bearer
// <token>" (Prometheus sends it with a scrape config's authorization
// section). The page at / holds no data and is served to anyone; it asks
// for the token and keeps it in the tab's session storage. docs/metrics.md lists every metric.
package metrics
