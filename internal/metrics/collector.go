// The node's collector: metrics read from its status snapshot at scrape
// time.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/objectstore"
)

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descTasks        = desc("quiver_tasks_total", "Tasks that ended, by state: done (succeeded) or failed (for good, after retries).", "state")
	descTasksSpilled = desc("quiver_tasks_spilled_total", "Tasks spilled between nodes: out (sent to peers) or in (run here for peers).", "direction")
	descRetries      = desc("quiver_task_retries_total", "Task attempts retried after an executor or a peer was lost.")
	descRows         = desc("quiver_rows_total", "Rows of calls' batches: in (admitted) or out (written).", "direction")
	descBytes        = desc("quiver_bytes_total", "Arrow buffer bytes of calls' batches: in (admitted) or out (written).", "direction")
	descCallsActive  = desc("quiver_calls_in_flight", "Calls running now.")
	descTasksActive  = desc("quiver_tasks_in_flight", "Tasks dispatched and not yet finished.")
	descQueued       = desc("quiver_tasks_queued", "Tasks waiting for a slot on this node.")
	descWorkers      = desc("quiver_python_workers", "Python worker processes, by state: busy, idle or starting.", "state")
	descRestarts     = desc("quiver_python_worker_restarts_total", "Python worker processes restarted after they died.")
	descLeases       = desc("quiver_python_worker_leases_total", "Python workers lent to a client on this host for its synchronous tasks (the lane's lease).")
	descStoreBytes   = desc("quiver_object_store_bytes", "Object store bytes by location: memory (heap), shm (adopted shared-memory files) or spilled (on disk, as in memory).", "location")
	descStoreLimit   = desc("quiver_object_store_limit_bytes", "The object store's memory bound.")
	descStoreObjects = desc("quiver_object_store_objects", "Live objects in the object store.")
	descSpill        = desc("quiver_object_store_spill_bytes_total", "Compressed bytes of spill files: written or read (back).", "direction")
	descMembers      = desc("quiver_cluster_members", "Members of the cluster as this node sees them (itself included), by state: alive, suspect, dead or left.", "state")
	descRoomReports  = desc("quiver_room_reports_total", "Room reports between nodes (a node with a free slot tells busy peers at once): in (taken from peers) or out (sent to them).", "direction")
	descSessions     = desc("quiver_sessions", "Session streams open now.")
)

var allDescs = []*prometheus.Desc{descTasks, descTasksSpilled, descRetries, descRows, descBytes, descCallsActive,
	descTasksActive, descQueued, descWorkers, descRestarts, descLeases, descStoreBytes, descStoreLimit, descStoreObjects,
	descSpill, descMembers, descSessions, descRoomReports}

// memberStates are the states quiver_cluster_members always reports.
var memberStates = []string{"alive", "suspect", "dead", "left"}

// collector reports a node's status snapshot.
type collector struct {
	status func() flight.ClusterStatus
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	if len(st.Nodes) == 0 {
		return
	}
	n := st.Nodes[0]
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter(descTasks, n.TasksDone, "done")
	counter(descTasks, n.TasksFailed, "failed")
	counter(descTasksSpilled, n.SpilledOut, "out")
	counter(descTasksSpilled, n.SpilledIn, "in")
	counter(descRoomReports, n.RoomReportsIn, "in")
	counter(descRoomReports, n.RoomReportsOut, "out")
	counter(descRetries, n.Retries)
	counter(descRows, n.RowsIn, "in")
	counter(descRows, n.Rows, "out")
	counter(descBytes, n.BytesIn, "in")
	counter(descBytes, n.BytesOut, "out")
	gauge(descCallsActive, int64(n.CallsActive))
	gauge(descTasksActive, n.TasksActive)
	gauge(descQueued, int64(n.Queued))
	gauge(descWorkers, int64(n.WorkersBusy), "busy")
	gauge(descWorkers, int64(n.Idle), "idle")
	gauge(descWorkers, n.Starting, "starting")
	counter(descRestarts, n.Restarts)
	counter(descLeases, n.Leases)
	var store objectstore.Stats
	if n.ObjectStore != nil {
		store = *n.ObjectStore
	}
	gauge(descStoreBytes, max(0, store.MemoryBytes-store.ShmBytes), "memory")
	gauge(descStoreBytes, store.ShmBytes, "shm")
	gauge(descStoreBytes, store.SpilledBytes, "spilled")
	gauge(descStoreLimit, store.MemoryLimitBytes)
	gauge(descStoreObjects, int64(store.Objects))
	counter(descSpill, store.SpillWrittenBytesTotal, "written")
	counter(descSpill, store.SpillReadBytesTotal, "read")
	members := map[string]int64{"alive": 1}
	for _, p := range st.Peers {
		members[p.State]++
	}
	for _, s := range memberStates {
		gauge(descMembers, members[s], s)
	}
	gauge(descSessions, n.Sessions)
}
