// Room reports between peers: a node left with a free slot and nothing
// queued tells nodes with tasks waiting at once (the room action), instead
// of leaving the slot idle until its next load report reaches them by
// gossip.
package flight

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// ActionRoom carries a Room report (body: its JSON); the result is empty.
// A node in no cluster answers FAILED_PRECONDITION.
const ActionRoom = "room"

// maxRoomName bounds a room report's node name (memberlist's names are
// short; a report is a few dozen bytes).
const maxRoomName = 256

// errAlone: a peer action came to a node in no cluster.
var errAlone = errors.New("this node is in no cluster")

// Room is a node's load as it tells a busy peer it has room.
type Room struct {
	// Name is the sender's node name, as membership knows it.
	Name string `json:"name"`
	// Workers and Executors are its Python worker and native lanes.
	Workers   RoomLane `json:"workers"`
	Executors RoomLane `json:"executors"`
}

// RoomLane is one lane's load: tasks it runs at once, running now, queued.
type RoomLane struct {
	Slots   int `json:"slots"`
	Running int `json:"running"`
	Queued  int `json:"queued"`
}

// DecodeRoom reads a room action's body; a bad one is an invalid argument.
func DecodeRoom(body []byte) (Room, error) {
	var r Room
	if err := json.Unmarshal(body, &r); err != nil {
		return Room{}, fmt.Errorf("%w: room report: %v", errMalformed, err)
	}
	if r.Name == "" || len(r.Name) > maxRoomName {
		return Room{}, fmt.Errorf("%w: room report: a node name of 1 to %d bytes is required", errMalformed, maxRoomName)
	}
	for _, l := range []RoomLane{r.Workers, r.Executors} {
		if l.Slots < 0 || l.Running < 0 || l.Queued < 0 {
			return Room{}, fmt.Errorf("%w: room report: negative load %+v", errMalformed, l)
		}
	}
	return r, nil
}

// room serves the room action: the node's OnRoom takes the report.
func (s *Server) room(ctx context.Context, body []byte) error {
	if err := s.checkPeerCert(ctx); err != nil {
		return err
	}
	if s.cfg.OnRoom == nil {
		return errAlone
	}
	r, err := DecodeRoom(body)
	if err != nil {
		return err
	}
	s.cfg.OnRoom(r)
	s.roomsIn.Add(1)
	return nil
}

// Room sends r to the node at addr.
func (p *PeerClient) Room(ctx context.Context, addr string, r Room) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err = p.action(ctx, addr, ActionRoom, body); err == nil {
		p.roomsOut.Add(1)
	}
	return err
}
