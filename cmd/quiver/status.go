// quiver status: the cluster view from a node's cluster_status action.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/spf13/cobra"

	qflight "github.com/quiver-udf/quiver/flight"
	"github.com/quiver-udf/quiver/internal/dial"
	"github.com/quiver-udf/quiver/internal/rundir"
)

func statusCmd() *cobra.Command {
	var addr, tokenFile string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: nodes, executors, calls, tasks, functions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if addr == "" {
				addr = defaultAddress()
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			st, err := clusterStatus(ctx, addr, readToken(tokenFile, addr))
			if err != nil {
				return fmt.Errorf("no answer from %s: %w", addr, err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "address", "", "node address (default: $QUIVER_ADDRESS, the default socket, grpc://127.0.0.1:8815)")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file holding the token (default: $QUIVER_TOKEN, else for a unix socket the file token beside it)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw JSON")
	return cmd
}

// defaultAddress is the client's default: $QUIVER_ADDRESS, the default
// socket if it exists, else loopback TCP.
func defaultAddress() string {
	if a := os.Getenv("QUIVER_ADDRESS"); a != "" {
		return a
	}
	sock := filepath.Join(rundir.Default(), rundir.SocketName)
	if _, err := os.Stat(sock); err == nil {
		return "grpc+unix://" + sock
	}
	return "grpc://127.0.0.1:8815"
}

func clusterStatus(ctx context.Context, addr, token string) (*qflight.ClusterStatus, error) {
	c, err := dial.Client(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stream, err := c.DoAction(dial.WithToken(ctx, token), &flight.Action{Type: qflight.ActionClusterStatus})
	if err != nil {
		return nil, err
	}
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var st qflight.ClusterStatus
	if err := json.Unmarshal(res.Body, &st); err != nil {
		return nil, fmt.Errorf("bad cluster_status body: %w", err)
	}
	return &st, nil
}

func printStatus(w io.Writer, st *qflight.ClusterStatus) {
	t := st.Totals
	fmt.Fprintf(w, "======== Quiver cluster: %d node(s), %d alive ========\n", max(t.Nodes, len(st.Nodes)), t.NodesAlive)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tGOSSIP\tSTATE\tVERSION\tWORKERS BUSY\tQUEUED\tSPILLED IN/OUT\tOBJECT STORE")
	for _, n := range st.Nodes {
		name := n.Name
		if name == "" {
			name = "(this node)"
		}
		addr := n.Address
		if addr == "" {
			addr = n.Socket
		}
		store := "-"
		if o := n.ObjectStore; o != nil {
			store = fmt.Sprintf("%.1f/%.1f MiB", mib(o.MemoryBytes), mib(o.MemoryLimitBytes))
		}
		fmt.Fprintf(tw, "%s *\t%s\t%s\t%s\t%s\t%d/%d\t%d\t-\t%s\n", name, addr, dash(n.Gossip), n.Status, n.Version,
			n.WorkersBusy, n.Workers, n.Queued, store)
	}
	for _, p := range st.Peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%d/%d\t%.1f/%.1f MiB\n", p.Name, dash(p.Address), p.Gossip, p.State,
			p.Version, p.WorkersBusy, p.Workers, p.Queued, p.TasksSpilledIn, p.TasksSpilledOut,
			mib(p.ObjectStoreBytes), mib(p.ObjectStoreLimitBytes))
	}
	tw.Flush()
	fmt.Fprintf(w, "total: python workers %d busy of %d, %d task(s) queued (alive nodes)\n", t.WorkersBusy, t.Workers, t.Queued)
	fmt.Fprintln(w, "\n======== This node (*) ========")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tVERSION\tUPTIME\tEXECUTORS\tCALLS\tTASKS\tCALLS TOTAL\tROWS TOTAL\tRSS")
	for _, n := range st.Nodes {
		name := n.Address
		if name == "" {
			name = n.Socket
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f MiB\n", name, n.Status, n.Version,
			(time.Duration(n.UptimeS) * time.Second).String(), n.Executors, n.CallsActive, n.TasksActive,
			n.CallsTotal, n.Rows, float64(n.RSSBytes)/(1<<20))
	}
	tw.Flush()
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "pid %d: python workers %d (%d idle, %d starting, %d restarts)\n",
			n.PID, n.Workers, n.Idle, n.Starting, n.Restarts)
		if o := n.ObjectStore; o != nil {
			fmt.Fprintf(w, "pid %d: object store %d objects, %.1f of %.1f MiB in memory, %d spilled (%.1f MiB in %d files)\n",
				n.PID, o.Objects, mib(o.MemoryBytes), mib(o.MemoryLimitBytes), o.SpilledObjects, mib(o.SpillFileBytes), o.SpillFiles)
			shm := n.ShmDir
			if shm == "" {
				shm = "off"
			}
			fmt.Fprintf(w, "pid %d: shared memory for objects: %s\n", n.PID, shm)
		}
		fmt.Fprintf(w, "pid %d: sessions open %d\n", n.PID, n.Sessions)
		fmt.Fprintf(w, "pid %d: functions %s\n", n.PID, strings.Join(n.Functions, ", "))
	}
}

// dash is s, or "-" when empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
