// quiver start: flags into a node.Config; detached unless --block.
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/quiver-udf/quiver/internal/node"
	"github.com/quiver-udf/quiver/internal/record"
	"github.com/quiver-udf/quiver/internal/rundir"
	"github.com/quiver-udf/quiver/objectstore"
)

type startFlags struct {
	listen, socket, runDir, tokenFile        string
	tlsCert, tlsKey, tlsCA, logLevel, python string
	record, spillDir, shmDir                 string
	gossip, name, metrics                    string
	join                                     []string
	joinTimeout                              time.Duration
	recordMax, objectMemory                  int64
	executors, workers, maxMessage           int
	drain, idleExit                          time.Duration
	watchPID                                 int
	block                                    bool
}

func startCmd() *cobra.Command {
	var f startFlags
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a node (detached unless --block)",
		Long: `Start a node. By default it listens on 127.0.0.1:8815 and on a user-only
unix socket in the run directory, and runs detached, with its pid and log
files in the run directory. Listening beyond loopback needs --token-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rundir.Ensure(f.runDir); err != nil {
				return err
			}
			if f.socket == "" {
				f.socket = filepath.Join(f.runDir, rundir.SocketName)
			}
			if f.spillDir == "" {
				f.spillDir = filepath.Join(f.runDir, "spill")
			}
			if !f.block {
				return startDetached(cmd, f)
			}
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			log, err := newLogger(f.logLevel)
			if err != nil {
				return err
			}
			defer log.Sync()
			// The pid file is written once this node serves, and removed only
			// while it is still this node's: a start refused because another
			// node serves the run directory must not orphan that node's file.
			pidFile := filepath.Join(f.runDir, rundir.PIDName)
			pid := fmt.Sprintf("%d\n", os.Getpid())
			ready := cfg.Ready
			cfg.Ready = func(tcp, socket, gossip string) {
				if err := os.WriteFile(pidFile, []byte(pid), 0o600); err != nil {
					log.Error("writing the pid file; quiver stop will not find this node", zap.Error(err))
				}
				ready(tcp, socket, gossip)
			}
			defer func() {
				if b, err := os.ReadFile(pidFile); err == nil && string(b) == pid {
					os.Remove(pidFile)
				}
			}()
			return node.Run(cmd.Context(), cfg, log)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8815", "TCP address to serve; \"\" for none")
	fl.StringVar(&f.socket, "socket", "", "unix socket path (default RUN_DIR/quiver.sock); \"none\" for none")
	fl.StringVar(&f.runDir, "run-dir", rundir.Default(), "directory for the socket, pid and log files (user-only)")
	fl.IntVar(&f.executors, "executors", 0, "native executor goroutines (default: one per core)")
	fl.IntVar(&f.workers, "workers", 0, "Python worker processes (default: one per core; -1 for none)")
	fl.StringVar(&f.python, "python", workerPython(), "interpreter for Python workers; it must import quiver (default: $QUIVER_PYTHON, else python3)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the token clients must send")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.StringVar(&f.tlsCA, "tls-ca", "", "the cluster's CA (PEM): peers are verified against it, and peer calls must present a client certificate it signed")
	fl.IntVar(&f.maxMessage, "max-message-bytes", 0, "largest gRPC message, i.e. input batch (default 512 MiB)")
	fl.StringVar(&f.record, "record", "", "record the input of every call under this directory (see docs/loadtest.md)")
	fl.Int64Var(&f.recordMax, "record-max-bytes", record.DefaultMaxBytes, "bound of the recording on disk, bytes; past it the oldest finished calls are deleted")
	fl.Int64Var(&f.objectMemory, "object-store-memory", objectstore.DefaultMemoryBytes(), "bytes of objects held in memory before spilling; 30% of RAM by default")
	fl.StringVar(&f.spillDir, "spill-dir", "", "directory for object store spill files (default RUN_DIR/spill)")
	fl.StringVar(&f.shmDir, "shm-dir", "", "where the node makes its private shared-memory directory for large objects of local clients (default /dev/shm); \"none\" for none")
	fl.DurationVar(&f.drain, "drain-timeout", 30*time.Second, "how long SIGTERM waits for calls in flight")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.IntVar(&f.watchPID, "watch-pid", 0, "drain and exit once this process is gone (0: none)")
	fl.DurationVar(&f.idleExit, "idle-exit", 0, "drain and exit after this long without a client connection (0: never)")
	fl.StringVar(&f.gossip, "gossip", "", "membership (gossip) address HOST:PORT, TCP and UDP; port 0 picks a free one; \"none\" for none (default, with --token-file or --join: the --listen host, port 8817, or a free port when --listen's port is 0; without either: none)")
	fl.StringSliceVar(&f.join, "join", nil, "join the cluster of these members' gossip addresses (HOST:PORT,...); without it the node starts a cluster")
	fl.DurationVar(&f.joinTimeout, "join-timeout", 60*time.Second, "how long joining is retried in the background")
	fl.StringVar(&f.name, "name", "", "this node's name in the cluster (default: hostname and a random suffix)")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics (/metrics), a live dashboard (/) and the status as JSON (/api/status) over HTTP on HOST:PORT, e.g. 127.0.0.1:8816 (default: off); beyond loopback it needs --token-file, and the endpoints then require the token")
	fl.BoolVar(&f.block, "block", false, "stay in the foreground; print a ready line on stdout when serving")
	return cmd
}

// config turns the flags into a node.Config.
func (f startFlags) config(cmd *cobra.Command) (node.Config, error) {
	metricsAddr := "" // bound address, known before Ready
	cfg := node.Config{
		Listen:            f.listen,
		Socket:            f.socket,
		Executors:         f.executors,
		Workers:           f.workers,
		Python:            f.python,
		TLSCert:           f.tlsCert,
		TLSKey:            f.tlsKey,
		TLSCA:             f.tlsCA,
		MaxMessageBytes:   f.maxMessage,
		DrainTimeout:      f.drain,
		Version:           version,
		Record:            f.record,
		RecordMaxBytes:    f.recordMax,
		ObjectStoreMemory: f.objectMemory,
		SpillDir:          f.spillDir,
		ShmDir:            f.shmDir,
		WatchPID:          f.watchPID,
		IdleExit:          f.idleExit,
		Join:              withPort(f.join, defaultGossipPort),
		JoinTimeout:       f.joinTimeout,
		Name:              f.name,
		Metrics:           f.metrics,
		MetricsReady:      func(addr string) { metricsAddr = addr },
		Ready: func(tcp, socket, gossip string) {
			line := fmt.Sprintf("quiver ready tcp=%s unix=%s", tcp, socket)
			if gossip != "" {
				line += " gossip=" + gossip
			}
			if metricsAddr != "" {
				line += " metrics=" + metricsAddr
			}
			fmt.Fprintln(cmd.OutOrStdout(), line)
		},
	}
	var err error
	if cfg.Gossip, cfg.GossipFallback, err = gossipAddr(f.gossip, f.listen); err != nil {
		return cfg, err
	}
	if cfg.Socket == "none" {
		cfg.Socket = ""
	}
	if f.record != "" {
		dir, err := filepath.Abs(f.record)
		if err != nil {
			return cfg, fmt.Errorf("--record: %w", err)
		}
		cfg.Record = dir
	}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return cfg, fmt.Errorf("token file: %w", err)
		}
		if cfg.Token = strings.TrimSpace(string(b)); cfg.Token == "" {
			return cfg, fmt.Errorf("token file %s is empty", f.tokenFile)
		}
	}
	// Without a token, gossip (even on loopback) would let any local user
	// join the cluster and be sent this node's tasks: membership is then on
	// only when asked for, by --gossip or --join.
	if f.gossip == "" && cfg.Token == "" && len(cfg.Join) == 0 {
		cfg.Gossip, cfg.GossipFallback = "", false
	}
	return cfg, nil
}

// defaultGossipPort is the gossip port of a node started with default
// flags; --join names it when a member's address has no port.
const defaultGossipPort = "8817"

// gossipAddr is the gossip address for --gossip flag given --listen: ""
// (none) for "none"; for "", the --listen host with port 8817 (port 0
// when --listen's is 0, so that nodes on free ports never collide), which
// falls back to a free port if taken; else flag itself.
func gossipAddr(flag, listen string) (addr string, fallback bool, err error) {
	switch flag {
	case "none":
		return "", false, nil
	case "":
	default:
		if _, _, err := net.SplitHostPort(flag); err != nil {
			return "", false, fmt.Errorf("--gossip %q: %w", flag, err)
		}
		return flag, false, nil
	}
	if listen == "" {
		return "", false, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", false, fmt.Errorf("--listen %q: %w", listen, err)
	}
	if port != "0" {
		port = defaultGossipPort
	}
	return net.JoinHostPort(host, port), true, nil
}

// withPort gives every address without a port the port given.
func withPort(addrs []string, port string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, port)
		}
		out = append(out, a)
	}
	return out
}

func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.OutputPaths = []string{"stderr"}
	cfg.Sampling = nil
	return cfg.Build()
}

// workerPython is the default interpreter of Python workers: $QUIVER_PYTHON,
// which the quiver command of an installed wheel sets to the interpreter it
// was installed with, else python3.
func workerPython() string {
	if p := os.Getenv("QUIVER_PYTHON"); p != "" {
		return p
	}
	return "python3"
}
