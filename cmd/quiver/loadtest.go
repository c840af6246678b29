// quiver loadtest: flags into a loadtest.Config, the report out, the verdict
// as the exit status.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/quiver-udf/quiver/internal/loadtest"
)

type loadtestFlags struct {
	cfg          loadtest.Config
	jsonPath     string
	maxErrorRate float64
}

func loadtestCmd() *cobra.Command {
	var f loadtestFlags
	cmd := &cobra.Command{
		Use:   "loadtest",
		Short: "Load-test a node or any Flight UDF endpoint: throughput and latency percentiles",
		Long: `Call a function over DoExchange from --concurrency workers, each holding one
stream and writing one batch, then reading its result (lockstep). The input is
a recording (--replay, made with quiver start --record) or generated
(--generate rows=10000,cols=float64:4). Closed loop by default; --rate makes
it an open loop whose latency counts from when each request was due.

With --verify, every answer of a built-in (identity, haversine_km, ...) is
checked row by row against a reference computed from the input; registered
Python functions are not verified.

Prints a table on stdout (and --json FILE), a live line on stderr when it is
a terminal, and exits non-zero when the error rate is above --max-error-rate
or --verify found a wrong, missing or duplicated row.
docs/loadtest.md has the details.`,
		Example: `  quiver loadtest --function haversine_km --generate rows=10000,cols=float64:4 --concurrency 8 --duration 10s
  quiver loadtest --function my_udf --replay /tmp/rec --speed 2 --duration 1m --json out.json
  quiver loadtest --function levenshtein --generate rows=1000,cols=utf8:2 --verify --duration 5s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLoadtest(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	c := &f.cfg
	fl.StringVar(&c.Target, "target", "", "endpoint (default: $QUIVER_ADDRESS, the default socket, grpc://127.0.0.1:8815)")
	fl.StringVar(&c.Function, "function", "", "function to call (required)")
	fl.StringVar(&c.Replay, "replay", "", "send a recording: the function's folder, or the recording's root")
	fl.StringVar(&c.Generate, "generate", "", "send generated batches, e.g. rows=10000,cols=float64:2,int64:1,seed=7")
	fl.IntVar(&c.Concurrency, "concurrency", 1, "workers, each with one stream")
	fl.Float64Var(&c.Rate, "rate", 0, "open loop: batches per second across all workers (0: closed loop)")
	fl.Float64Var(&c.Speed, "speed", 0, "replay at the recorded pacing, this many times as fast (0: as fast as the loop allows)")
	fl.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time, after the warmup (0 with --replay: one pass over the recording)")
	fl.DurationVar(&c.Warmup, "warmup", 0, "time to send before measuring")
	fl.Int64Var(&c.RowsPerTask, "rows-per-task", 0, "send the quiver-rows-per-task header (0: none)")
	fl.StringVar(&c.Token, "token", "", "bearer token (default: $QUIVER_TOKEN)")
	fl.StringVar(&f.jsonPath, "json", "", "also write the report as JSON to this file")
	fl.Float64Var(&f.maxErrorRate, "max-error-rate", 0, "exit non-zero when failed/sent is above this fraction (0..1)")
	fl.BoolVar(&c.Verify, "verify", false, "check every answer of a built-in against a reference; count wrong, missing and duplicated rows (exit non-zero on any)")
	fl.StringVar(&c.VerifyAs, "verify-as", "", "with --verify: check against this function's reference instead of --function's")
	return cmd
}

// runLoadtest runs the test and returns the verdict: nil, or why it failed.
func runLoadtest(ctx context.Context, f loadtestFlags, stdout, stderr io.Writer) error {
	if f.maxErrorRate < 0 || f.maxErrorRate > 1 {
		return fmt.Errorf("--max-error-rate %g: want a fraction from 0 to 1", f.maxErrorRate)
	}
	cfg := f.cfg
	if cfg.Target == "" {
		cfg.Target = defaultAddress()
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("QUIVER_TOKEN")
	}
	if isTerminal(stderr) {
		cfg.Progress = stderr
	}
	rep, err := loadtest.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if f.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("loadtest: --json: %w", err)
		}
	}
	return verdict(rep, f.maxErrorRate)
}

// verdict fails a run that measured nothing, failed too often, or gave
// wrong answers.
func verdict(rep *loadtest.Report, maxErrorRate float64) error {
	if rep.BadRows() > 0 {
		return fmt.Errorf("loadtest: --verify found %d wrong, %d missing and %d duplicated rows (first: %s)",
			rep.WrongRows, rep.MissingRows, rep.DuplicatedRows, rep.VerifySample)
	}
	if rep.Sent == 0 {
		return errors.New("loadtest: no request was measured (is --duration longer than one request?)")
	}
	if rep.ErrorRate > maxErrorRate {
		return fmt.Errorf("loadtest: error rate %.2f%% (%d of %d requests failed: %s) is above --max-error-rate %g",
			100*rep.ErrorRate, rep.Failed, rep.Sent, rep.Summary(), maxErrorRate)
	}
	return nil
}

// isTerminal reports whether w is a terminal (for the live progress line).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
