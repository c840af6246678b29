package node

import (
	"context"
	"net"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/scheduler"
	"github.com/quiver-udf/quiver/udf"
)

// roomServer is a Flight server on loopback that records the room
// reports it takes.
type roomServer struct {
	addr string
	mu   sync.Mutex
	got  []flight.Room
}

func startRoomServer(t *testing.T) *roomServer {
	t.Helper()
	rs := &roomServer{}
	sched, err := scheduler.New(scheduler.Config{Executors: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := flight.Config{OnRoom: func(r flight.Room) {
		rs.mu.Lock()
		rs.got = append(rs.got, r)
		rs.mu.Unlock()
	}}
	srv, err := flight.New(cfg, sched, udf.NewBuiltinCatalog(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rs.addr = lis.Addr().String()
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Shutdown(context.Background()); sched.Close() })
	return rs
}

func (rs *roomServer) reports() []flight.Room {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]flight.Room(nil), rs.got...)
}

// TestRoomReportsGoToPeersHoldingTasks: a node with a free slot tells the
// live peers whose calls hold tasks, with its load, and no one else; a
// node without room tells no one.
func TestRoomReportsGoToPeersHoldingTasks(t *testing.T) {
	busy1, busy2, idle, dead := startRoomServer(t), startRoomServer(t), startRoomServer(t), startRoomServer(t)
	src := views{{Name: "busy1", FlightAddr: busy1.addr, Alive: true, Held: 3}, {Name: "busy2", FlightAddr: busy2.addr, Alive: true, Held: 1},
		{Name: "idle", FlightAddr: idle.addr, Alive: true}, {Name: "dead", FlightAddr: dead.addr, Held: 5}}
	pc := flight.NewPeerClient(flight.PeerConfig{})
	defer pc.Close()
	rs := newRoomSender(src, func() string { return "me" }, pc, zaptest.NewLogger(t))
	full := []scheduler.LaneStats{{Lane: "native", Slots: 1, Running: 1}, {Lane: "workers", Slots: 2, Running: 2, Queued: 1}}
	rs.send(context.Background(), full)
	for _, s := range []*roomServer{busy1, busy2, idle, dead} {
		if got := s.reports(); len(got) != 0 {
			t.Fatalf("a node without room sent %+v", got)
		}
	}
	lanes := []scheduler.LaneStats{{Lane: "native", Slots: 1, Running: 1}, {Lane: "workers", Slots: 2, Running: 1}}
	rs.send(context.Background(), lanes)
	want := flight.Room{Name: "me", Workers: flight.RoomLane{Slots: 2, Running: 1}, Executors: flight.RoomLane{Slots: 1, Running: 1}}
	for _, s := range []*roomServer{busy1, busy2} {
		if got := s.reports(); len(got) != 1 || got[0] != want {
			t.Fatalf("a busy peer got %+v, want [%+v]", got, want)
		}
	}
	for _, s := range []*roomServer{idle, dead} {
		if got := s.reports(); len(got) != 0 {
			t.Fatalf("a peer holding no task (or dead) got %+v", got)
		}
	}
}

// TestRoomReportsGoToRoomFanPeers: of many busy peers, RoomFan hear.
func TestRoomReportsGoToRoomFanPeers(t *testing.T) {
	var src views
	var servers []*roomServer
	for i := 0; i < scheduler.RoomFan+2; i++ {
		s := startRoomServer(t)
		servers = append(servers, s)
		src = append(src, PeerInfo{Name: s.addr, FlightAddr: s.addr, Alive: true, Held: 1})
	}
	pc := flight.NewPeerClient(flight.PeerConfig{})
	defer pc.Close()
	rs := newRoomSender(src, func() string { return "me" }, pc, zaptest.NewLogger(t))
	rs.send(context.Background(), []scheduler.LaneStats{{Lane: "native", Slots: 1}, {Lane: "workers", Slots: 2}})
	n := 0
	for _, s := range servers {
		n += len(s.reports())
	}
	if n != scheduler.RoomFan {
		t.Fatalf("%d room reports sent to %d busy peers, want %d", n, len(servers), scheduler.RoomFan)
	}
}
