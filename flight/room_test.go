// The room action against a real server: a report reaches OnRoom as sent,
// a node in no cluster and a bad body are refused with their codes, a
// caller without the token is unauthenticated, and DecodeRoom is fuzzed.
package flight

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoomReportReachesOnRoom(t *testing.T) {
	var mu sync.Mutex
	var got []Room
	n := startNode(t, nodeOptions{cfg: Config{Token: "tok", OnRoom: func(r Room) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
	}}})
	addr := strings.TrimPrefix(n.tcp, "grpc://")
	pc := NewPeerClient(PeerConfig{Token: "tok"})
	defer pc.Close()
	want := Room{Name: "node-b", Workers: RoomLane{Slots: 4, Running: 3}, Executors: RoomLane{Slots: 2, Queued: 1}}
	if err := pc.Room(testCtx(t), addr, want); err != nil {
		t.Fatal(err)
	}
	if in, out := n.srv.ClusterStatus().Nodes[0].RoomReportsIn, pc.roomsOut.Load(); in != 1 || out != 1 {
		t.Fatalf("counted %d room reports in, %d out; want 1 and 1", in, out)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != want {
		t.Fatalf("OnRoom got %+v, want [%+v]", got, want)
	}
	mu.Unlock()

	for _, tc := range []struct {
		body string
		code codes.Code
	}{
		{`{"workers":{"slots":1}}`, codes.InvalidArgument}, // no name
		{`{"name":"x","workers":{"slots":-1}}`, codes.InvalidArgument},
		{`{"name":`, codes.InvalidArgument},
		{`[]`, codes.InvalidArgument},
	} {
		_, err := pc.action(testCtx(t), addr, ActionRoom, []byte(tc.body))
		if status.Code(err) != tc.code {
			t.Errorf("room %s: got %v, want %v", tc.body, err, tc.code)
		}
	}
	bad := NewPeerClient(PeerConfig{Token: "wrong"})
	defer bad.Close()
	if err := bad.Room(testCtx(t), addr, want); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: got %v, want Unauthenticated", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("refused reports reached OnRoom: %+v", got)
	}
}

func TestRoomOnANodeAlone(t *testing.T) {
	n := startNode(t, nodeOptions{})
	pc := NewPeerClient(PeerConfig{})
	defer pc.Close()
	err := pc.Room(testCtx(t), strings.TrimPrefix(n.tcp, "grpc://"), Room{Name: "x"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no cluster") {
		t.Fatalf("got %v, want FailedPrecondition: in no cluster", err)
	}
	// The node keeps serving.
	if _, err := client(t, n.unix).DoAction(testCtx(t), &flight.Action{Type: ActionHealth}); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeRoom(f *testing.F) {
	f.Add([]byte(`{"name":"a","workers":{"slots":4,"running":1,"queued":0},"executors":{"slots":2}}`))
	f.Add([]byte(`{"name":""}`))
	f.Add([]byte(`{"name":"a","workers":{"slots":-4}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"name":"a","workers":{"slots":1e99}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRoom(body)
		if err != nil {
			if codeOf(err) != codes.InvalidArgument || !errors.Is(err, errMalformed) {
				t.Fatalf("DecodeRoom(%q): %v is not InvalidArgument", body, err)
			}
			return
		}
		if r.Name == "" || len(r.Name) > maxRoomName {
			t.Fatalf("DecodeRoom(%q) accepted name %q", body, r.Name)
		}
		for _, l := range []RoomLane{r.Workers, r.Executors} {
			if l.Slots < 0 || l.Running < 0 || l.Queued < 0 {
				t.Fatalf("DecodeRoom(%q) accepted %+v", body, r)
			}
		}
		// What was accepted encodes and decodes to itself.
		again, _ := json.Marshal(r)
		if r2, err := DecodeRoom(again); err != nil || r2 != r {
			t.Fatalf("%+v round-trips to %+v, %v", r, r2, err)
		}
	})
}
