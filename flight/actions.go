// DoAction and ListActions: the node's actions (docs/protocol.md lists them).
package flight

import (
	"encoding/json"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/flight"
)

// Actions the node serves, and what their results hold.
const (
	ActionProtocolVersion = "protocol_version" // one byte: ProtocolVersion
	ActionHealth          = "health"           // JSON Health
	ActionClusterStatus   = "cluster_status"   // JSON ClusterStatus
)

// ProtocolVersion is the wire protocol's version, as the RisingWave and
// Databend callers expect it.
const ProtocolVersion = 0x02

var actionTypes = []*flight.ActionType{
	{Type: ActionProtocolVersion, Description: "the wire protocol version, one byte (0x02)"},
	{Type: ActionHealth, Description: "JSON {status: serving|draining, version}"},
	{Type: ActionClusterStatus, Description: "JSON view of the cluster: nodes, executors, calls, tasks, functions"},
	{Type: ActionRegister, Description: "register a Python function: u32 LE length, JSON {name, returns}, cloudpickled blob"},
	{Type: ActionDrop, Description: "drop a Python function: body is its name"},
	{Type: ActionFetchFunction, Description: "a registered Python function's register body: body is its content hash (peers)"},
	{Type: ActionObjectRelease, Description: "drop the reference a DoPut took: body is the object id"},
	{Type: ActionRoom, Description: "a peer's room report: JSON {name, workers, executors}, each {slots, running, queued} (peers)"},
	{Type: ActionObjectStat, Description: "JSON {bytes} of an object published here, NOT_FOUND otherwise: body is the id (peers)"},
	{Type: ActionObjectShm, Description: "JSON {dir}: the node's shared-memory directory for objects, \"\" when off or over TCP"},
	{Type: ActionObjectAdopt, Description: "store a file of that directory, an Arrow IPC stream: JSON {file: NAME}; answers like DoPut"},
	{Type: ActionObjectLocate, Description: "JSON {id}: answers JSON {file, bytes}, the object's file in that directory or \"\""},
	{Type: ActionLane, Description: "JSON {path, key}: the node's same-host lane for sessions, \"\" when none or over TCP"},
}

// ListActions lists the actions above.
func (s *Server) ListActions(_ *flight.Empty, stream flight.FlightService_ListActionsServer) (err error) {
	defer func() { err = s.finish("ListActions", err) }()
	for _, a := range actionTypes {
		if err := stream.Send(a); err != nil {
			return err
		}
	}
	return nil
}

// DoAction serves one action.
func (s *Server) DoAction(a *flight.Action, stream flight.FlightService_DoActionServer) (err error) {
	defer func() { err = s.finish("DoAction", err) }()
	var body []byte
	switch a.Type {
	case ActionProtocolVersion:
		body = []byte{ProtocolVersion}
	case ActionHealth:
		body, err = json.Marshal(s.Health())
	case ActionClusterStatus:
		body, err = json.Marshal(s.ClusterStatus())
	case ActionRegister:
		body, err = s.register(a.Body)
	case ActionDrop:
		err = s.cat.Drop(string(a.Body))
	case ActionFetchFunction:
		if err = s.checkPeerCert(stream.Context()); err == nil {
			body, err = s.fetchFunction(a.Body)
		}
	case ActionRoom:
		err = s.room(stream.Context(), a.Body)
	case ActionObjectRelease:
		err = s.releaseObject(a.Body)
	case ActionObjectStat:
		body, err = s.objectStat(a.Body)
	case ActionObjectShm:
		body, err = s.objectShm(stream)
	case ActionObjectAdopt:
		return s.objectAdopt(stream, a.Body)
	case ActionObjectLocate:
		body, err = s.objectLocate(stream, a.Body)
	case ActionLane:
		body, err = s.laneInfo(stream)
	default:
		return fmt.Errorf("%w %q: this node serves %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s and %s", errUnknownAction, a.Type,
			ActionProtocolVersion, ActionHealth, ActionClusterStatus, ActionRegister, ActionDrop, ActionFetchFunction, ActionRoom, ActionObjectRelease,
			ActionObjectStat, ActionObjectShm, ActionObjectAdopt, ActionObjectLocate, ActionLane)
	}
	if err != nil {
		return err
	}
	return stream.Send(&flight.Result{Body: body})
}
