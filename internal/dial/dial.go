// Package dial opens Flight clients to a node from an address in the
// client syntax: grpc+unix:///path, grpc://host:port or grpc+tls://host:port.
package dial

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// MaxMessageBytes is the largest message a client accepts or sends.
const MaxMessageBytes = 512 << 20

// Target turns a client address into a gRPC target and whether it wants TLS.
func Target(addr string) (target string, useTLS bool, err error) {
	switch {
	case strings.HasPrefix(addr, "grpc+unix://"):
		p := strings.TrimPrefix(addr, "grpc+unix://")
		if !strings.HasPrefix(p, "/") {
			return "", false, fmt.Errorf("dial: %q: a unix socket path must be absolute (grpc+unix:///path)", addr)
		}
		return "unix://" + p, false, nil
	case strings.HasPrefix(addr, "grpc+tls://"):
		return strings.TrimPrefix(addr, "grpc+tls://"), true, nil
	case strings.HasPrefix(addr, "grpc+tcp://"):
		return strings.TrimPrefix(addr, "grpc+tcp://"), false, nil
	case strings.HasPrefix(addr, "grpc://"):
		return strings.TrimPrefix(addr, "grpc://"), false, nil
	}
	return "", false, fmt.Errorf("dial: %q: want grpc+unix:///path, grpc://host:port or grpc+tls://host:port", addr)
}

// Client opens a Flight client to addr. The caller closes it.
func Client(addr string, opts ...grpc.DialOption) (flight.Client, error) {
	target, useTLS, err := Target(addr)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if useTLS {
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	opts = append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	}, opts...)
	return flight.NewClientWithMiddleware(target, nil, nil, opts...)
}

// WithToken adds the bearer token to ctx's outgoing metadata, if any.
func WithToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
