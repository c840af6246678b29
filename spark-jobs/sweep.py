"""A driver-side parameter sweep with quiver's task API: calibrate a volatility smile by Monte Carlo.

No Spark here: this is the other half of what the Ray-on-Databricks recipe is
used for (Ray tasks and Tune from the driver), done with quiver's task API.

The market: QUOTES European call prices on one underlying over a range of
strikes and maturities, made from a "true" smile vol(K) = level + skew*ln(K/S)
plus noise. The sweep: a GRID x GRID grid of (level, skew); for each point,
price every quote by Monte Carlo (the same PATHS standard normals for every
point, common random numbers) and score the point by the root mean square
error against the quotes. The best point is the calibration.

Shared data goes to the node once with put: the quotes as an Arrow table, the
normals as a pickled numpy array. The grid goes out with map; the refs ride
along as arguments (itertools.repeat), and each worker resolves them once and
caches them. The same function then runs as a serial loop in this process; the
script checks that both give the same errors, prints the best parameters and
both wall times, and exits 1 if they differ.

    .venv/bin/python spark-jobs/sweep.py [--grid 20] [--paths 100000] [--address ADDR]

With no --address and no $QUIVER_ADDRESS, quiver.connect() uses the node on
this machine's default socket, or starts one (workers on this interpreter, one
per core) and stops it at exit.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

try:
    import quiver
except ImportError:  # run from a checkout without `pip install -e pyclient`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pyclient"))
    import quiver

SPOT = 100.0
RATE = 0.02
TRUE_LEVEL, TRUE_SKEW = 0.23, -0.35
QUOTES = 48


def market_quotes(seed: int = 7) -> pa.Table:
    """Call quotes from the true smile (Black-Scholes prices) with 0.5% noise."""
    rng = np.random.default_rng(seed)
    strikes = np.repeat(np.linspace(70.0, 130.0, QUOTES // 4), 4)
    maturities = np.tile([0.25, 0.5, 1.0, 2.0], QUOTES // 4)
    vols = TRUE_LEVEL + TRUE_SKEW * np.log(strikes / SPOT)
    prices = np.array([black_scholes_call(SPOT, k, v, RATE, t)
                       for k, v, t in zip(strikes, vols, maturities)])
    prices *= 1 + 0.005 * rng.standard_normal(len(prices))
    return pa.table({"strike": strikes, "maturity": maturities, "price": prices})


def black_scholes_call(spot: float, strike: float, vol: float, rate: float, t: float) -> float:
    d1 = (math.log(spot / strike) + (rate + 0.5 * vol * vol) * t) / (vol * math.sqrt(t))
    d2 = d1 - vol * math.sqrt(t)
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    return spot * cdf(d1) - strike * math.exp(-rate * t) * cdf(d2)


def calibration_error(point: tuple[float, float], quotes: pa.Table, normals: np.ndarray) -> float:
    """RMSE of Monte Carlo prices at smile (level, skew) against the quotes.

    Runs in a worker (quotes and normals arrive resolved from their refs) or,
    for the serial baseline, in this process; the arithmetic is identical.
    """
    level, skew = point
    strikes = quotes.column("strike").to_numpy()
    maturities = quotes.column("maturity").to_numpy()
    prices = quotes.column("price").to_numpy()
    path = np.empty_like(normals)  # one buffer, reused: no allocation per quote
    sq = 0.0
    for k, t, quoted in zip(strikes, maturities, prices):
        vol = max(level + skew * math.log(k / SPOT), 0.01)
        np.multiply(normals, vol * math.sqrt(t), out=path)
        path += (RATE - 0.5 * vol * vol) * t
        np.exp(path, out=path)
        path *= SPOT
        path -= k
        np.maximum(path, 0.0, out=path)
        model = math.exp(-RATE * t) * float(path.mean())
        sq += (model - quoted) ** 2
    return math.sqrt(sq / len(prices))


def grid(n: int) -> list[tuple[float, float]]:
    levels = np.linspace(0.15, 0.31, n)
    skews = np.linspace(-0.6, -0.1, n)
    return [(float(a), float(b)) for a in levels for b in skews]


def wait_for_workers(client, timeout_s: float = 60.0) -> int:
    """Wait while a freshly started node is still starting its workers; return how many run."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = client.status()["nodes"]
        starting = sum(n.get("workers_starting", 0) for n in nodes)
        if not starting or time.monotonic() > deadline:
            return sum(n.get("workers", 0) for n in nodes)
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--grid", type=int, default=20, help="points per axis (default 20: 400 points)")
    parser.add_argument("--paths", type=int, default=100_000, help="Monte Carlo paths (default 100000)")
    parser.add_argument("--address", default=None, help="a node to use (default: the local one)")
    parser.add_argument("--skip-serial", action="store_true", help="do not run the serial baseline")
    args = parser.parse_args()

    quotes = market_quotes()
    normals = np.random.default_rng(42).standard_normal(args.paths)
    points = grid(args.grid)

    client = quiver.connect(args.address)
    workers = wait_for_workers(client)
    print(f"sweep: {len(points)} grid points x {QUOTES} quotes x {args.paths} paths, "
          f"on {client.address} ({workers} Python workers)")

    start = time.perf_counter()
    with client.put(quotes) as quotes_ref, client.put(normals) as normals_ref:
        errors = list(client.map(calibration_error, points,
                                 itertools.repeat(quotes_ref), itertools.repeat(normals_ref)))
    quiver_s = time.perf_counter() - start
    best = min(range(len(points)), key=errors.__getitem__)
    level, skew = points[best]
    print(f"best: level={level:.4f} skew={skew:.4f} rmse={errors[best]:.4f} "
          f"(true level={TRUE_LEVEL} skew={TRUE_SKEW})")
    print(f"quiver map: {quiver_s:.2f} s ({len(points) / quiver_s:.1f} points/s)")

    if args.skip_serial:
        return 0
    start = time.perf_counter()
    serial = [calibration_error(p, quotes, normals) for p in points]
    serial_s = time.perf_counter() - start
    print(f"serial loop: {serial_s:.2f} s; speedup {serial_s / quiver_s:.2f}x")
    if serial != errors:
        diff = sum(a != b for a, b in zip(serial, errors))
        print(f"MISMATCH: {diff} of {len(points)} errors differ between quiver and the serial loop")
        return 1
    print("results identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
