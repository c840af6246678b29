// Refusals between nodes: another token neither joins nor calls a peer;
// with TLS and a CA, peers dial each other with TLS and client
// certificates, and a peer call without one is refused.
package test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/internal/testpy"
)

// logBuffer collects a node's log; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

// spilledCall makes a peer call (a spilled task of the built-in identity)
// at addr with token and the dial options opts, and returns its gRPC code.
func spilledCall(t *testing.T, addr, token string, opts ...grpc.DialOption) codes.Code {
	t.Helper()
	c, err := dial.Client(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(dial.WithToken(context.Background(), token), hang)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "quiver-spilled", "1", "quiver-retries", "0")
	stream, err := c.DoExchange(ctx)
	if err != nil {
		return status.Code(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "x", Type: arrow.PrimitiveTypes.Int64}}, nil)
	bld := array.NewInt64Builder(memory.DefaultAllocator)
	bld.AppendValues([]int64{1, 2, 3}, nil)
	col := bld.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
	defer rec.Release()
	w := flight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"identity"}})
	_ = w.Write(rec)
	_ = w.Close()
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return codes.OK
		} else if err != nil {
			return status.Code(err)
		}
	}
}

func TestAnotherTokenNeitherJoinsNorCalls(t *testing.T) {
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	a := startSpillNode(t, bin, py, "cluster-token")
	var log logBuffer
	stranger := startNode(t, bin, py, nodeSpec{token: "another-token", join: []string{a.gossip},
		args: []string{"--join-timeout", "1s"}, log: &log})
	deadline := time.Now().Add(hang)
	for !log.contains("giving up joining") {
		if time.Now().After(deadline) {
			t.Fatal("the node with another token never gave up joining")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := a.stats(t).alivePeers; n != 0 {
		t.Errorf("the member sees %d peers after a node with another token tried to join", n)
	}
	if n := stranger.stats(t).alivePeers; n != 0 {
		t.Errorf("the node with another token sees %d peers", n)
	}
	if c := spilledCall(t, "grpc://"+a.addr, "another-token"); c != codes.Unauthenticated {
		t.Errorf("a peer call with another token: %s, want Unauthenticated", c)
	}
	if c := spilledCall(t, "grpc://"+a.addr, "cluster-token"); c != codes.OK {
		t.Errorf("a peer call with the cluster's token: %s, want OK", c)
	}
}

func TestTLSPeersSpillWithClientCertificates(t *testing.T) {
	bin := buildQuiver(t)
	py := testpy.Python(t, "..")
	ca := newTestCA(t)
	p2 := startNode(t, bin, py, nodeSpec{token: "cluster-token", tls: ca.issue(t, "p2", "127.0.0.1")})
	c1 := ca.issue(t, "n1", "127.0.0.1")
	n1 := startNode(t, bin, py, nodeSpec{token: "cluster-token", tls: c1, join: []string{p2.gossip}})
	n1.waitPeers(t, 1)
	registerSlow(t, py, n1)
	callSlow(t, n1, 100)
	st1, st2 := n1.stats(t), p2.stats(t)
	t.Logf("origin %+v, peer %+v", st1, st2)
	if st2.SpilledIn == 0 || st1.PeerFailures != 0 || st1.PeerRefusals != 0 {
		t.Fatalf("origin %+v, peer %+v: want tasks run on the TLS peer, none failed or refused", st1, st2)
	}

	// The call above fetched the function from n1 and ran tasks on p2, each
	// with a client certificate. Without one, a peer call is refused; an
	// ordinary call needs none.
	target := "grpc+tls://" + p2.addr
	if c := spilledCall(t, target, "cluster-token", grpc.WithTransportCredentials(c1.clientCreds(t, false))); c != codes.Unauthenticated {
		t.Errorf("a peer call without a client certificate: %s, want Unauthenticated", c)
	}
	if c := spilledCall(t, target, "cluster-token", grpc.WithTransportCredentials(c1.clientCreds(t, true))); c != codes.OK {
		t.Errorf("a peer call with the CA's client certificate: %s, want OK", c)
	}
	stranger := newTestCA(t).issue(t, "stranger", "127.0.0.1")
	stranger.ca = c1.ca // it trusts the cluster's CA, its certificate is another's
	if c := spilledCall(t, target, "cluster-token", grpc.WithTransportCredentials(stranger.clientCreds(t, true))); c == codes.OK {
		t.Error("a peer call with a certificate of another CA succeeded")
	}
}
