// TLS: the node's server credentials, and those it dials peers with.
package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"google.golang.org/grpc/credentials"
)

// tlsCreds returns the credentials the node serves with (nil without
// --tls-cert) and those it dials TLS peers with. With a CA, the server
// verifies client certificates when given (peer calls require one,
// flight.Config.PeerCerts; ordinary clients need none) and peers are
// verified against that CA alone; the node's own certificate is its client
// certificate to peers.
func tlsCreds(cfg Config) (server, peers credentials.TransportCredentials, err error) {
	client := &tls.Config{MinVersion: tls.VersionTLS12}
	srv := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("node: TLS: %w", err)
		}
		srv.Certificates = []tls.Certificate{cert}
		client.Certificates = []tls.Certificate{cert}
	}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, nil, fmt.Errorf("node: --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("node: --tls-ca %s: no PEM certificate in it", cfg.TLSCA)
		}
		srv.ClientCAs, srv.ClientAuth = pool, tls.VerifyClientCertIfGiven
		client.RootCAs = pool
	}
	if cfg.TLSCert != "" {
		server = credentials.NewTLS(srv)
	}
	return server, credentials.NewTLS(client), nil
}
