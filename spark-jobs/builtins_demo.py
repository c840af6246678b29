"""Demo: call every built-in function of a running quiver node on generated data.

Run by `make run` against a node that is already up (address from $QUIVER_ADDRESS,
else the local default socket). For each function it prints a few result rows, then
a table of rows/s. The input goes as a table of Spark-sized batches (10,000 rows by
default), the way a pandas UDF would send it. Exits non-zero on any error.

    QUIVER_ADDRESS=grpc+unix:///tmp/quiver-1000/quiver.sock python spark-jobs/builtins_demo.py
"""

from __future__ import annotations

import argparse
import hashlib
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

CITIES = {  # name: (lat, lon)
    "Berlin": (52.5200, 13.4050), "Paris": (48.8566, 2.3522), "London": (51.5074, -0.1278),
    "New York": (40.7128, -74.0060), "São Paulo": (-23.5505, -46.6333),
    "Tokyo": (35.6762, 139.6503), "Sydney": (-33.8688, 151.2093), "Lagos": (6.5244, 3.3792),
    "Mumbai": (19.0760, 72.8777), "Reykjavík": (64.1466, -21.9426),
    "Auckland": (-36.8485, 174.7633), "Anchorage": (61.2181, -149.9003),
}
FIRST = ["Anna", "José", "Zoë", "Mohammed", "Wei", "Olga", "Søren", "Aoife", "Kwame", "Priya",
         "Łukasz", "Jürgen", "Chloé", "Hiroshi", "Fatima", "Mateo", "Ingrid", "Nguyễn", "Ravi"]
LAST = ["Müller", "García", "Smith", "Wang", "Ivanova", "Kowalski", "Okafor", "O'Brien",
        "Dubois", "Sato", "Hernández", "Nakamura", "Andersson", "Rossi", "Papadopoulos", "王"]


def trips(rng: np.random.Generator, n: int) -> pa.RecordBatch:
    """Origin and destination points scattered around random cities (lat1, lon1, lat2, lon2)."""
    centres = np.array(list(CITIES.values()))
    a, b = centres[rng.integers(len(centres), size=n)], centres[rng.integers(len(centres), size=n)]
    a = a + rng.normal(0, 0.3, a.shape)
    b = b + rng.normal(0, 0.3, b.shape)
    return pa.record_batch([a[:, 0], a[:, 1], b[:, 0], b[:, 1]],
                           names=["lat1", "lon1", "lat2", "lon2"])


def names(rng: np.random.Generator, n: int) -> np.ndarray:
    first = np.array(FIRST, dtype=object)[rng.integers(len(FIRST), size=n)]
    last = np.array(LAST, dtype=object)[rng.integers(len(LAST), size=n)]
    return first + " " + last


def typos(rng: np.random.Generator, values: np.ndarray) -> list[str]:
    """Each name with 0-2 random edits (drop, swap, replace a character): record-linkage pairs."""
    out = []
    edits = rng.integers(0, 3, size=len(values))
    for s, k in zip(values, edits):
        for _ in range(k):
            i = int(rng.integers(len(s) - 1))
            op = rng.integers(3)
            s = s[:i] + s[i + 1:] if op == 0 else (
                s[:i] + s[i + 1] + s[i] + s[i + 2:] if op == 1 else s[:i] + "e" + s[i + 1:])
        out.append(s)
    return out


def workloads(rng: np.random.Generator, n: int) -> dict[str, pa.Table]:
    """One input table per built-in, n rows each."""
    t = trips(rng, n)
    people = names(rng, n)
    emails = [f"{p.lower().replace(' ', '.')}{i}@example.com" for i, p in enumerate(people)]
    precision = rng.integers(5, 10, size=n).astype(np.int32)
    return {
        "identity": pa.table({"id": np.arange(n, dtype=np.int64) * 7919}),
        "haversine_km": pa.Table.from_batches([t]),
        "sha256_hex": pa.table({"email": pa.array(emails, pa.string())}),
        "levenshtein": pa.table({"a": pa.array(people, pa.string()),
                                 "b": pa.array(typos(rng, people), pa.string())}),
        "jaro_winkler": pa.table({"a": pa.array(people, pa.string()),
                                  "b": pa.array(typos(rng, people), pa.string())}),
        "geohash_encode": pa.table({"lat": t.column(0), "lon": t.column(1), "precision": precision}),
    }


def spot_check(name: str, table: pa.Table, out: pa.ChunkedArray) -> None:
    """Check a few rows against Python, so the demo fails loudly on a wrong answer."""
    rows = table.slice(0, 5).to_pylist()
    got = out.slice(0, 5).to_pylist()
    for row, value in zip(rows, got):
        args = list(row.values())
        if name == "identity":
            want = args[0]
        elif name == "sha256_hex":
            want = hashlib.sha256(args[0].encode()).hexdigest()
        elif name == "haversine_km":
            p1, l1, p2, l2 = map(math.radians, args)
            h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
            want = 2 * 6371.0 * math.asin(math.sqrt(h))
            if not math.isclose(value, want, rel_tol=1e-9):
                raise AssertionError(f"{name}{tuple(args)} = {value}, want {want}")
            continue
        else:
            continue  # no short reference here; pyclient/tests checks these thoroughly
        if value != want:
            raise AssertionError(f"{name}{tuple(args)} = {value!r}, want {want!r}")


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, str):
        return repr(v if len(v) <= 24 else v[:21] + "...")
    return str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per function")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="rows per Arrow batch")
    parser.add_argument("--samples", type=int, default=3, help="result rows to print per function")
    args = parser.parse_args()

    rng = np.random.default_rng(2024)
    inputs = workloads(rng, args.rows)
    client = quiver.connect()
    print(f"quiver built-ins demo: node {client.address}, {args.rows:,} rows per function, "
          f"batches of {args.batch_rows:,} rows\n")
    try:
        version = client.health()["version"]
        timings = []
        for name, table in inputs.items():
            table = pa.Table.from_batches(table.to_batches(max_chunksize=args.batch_rows))
            client.call(name, table.slice(0, 1_000))  # warm up
            start = time.perf_counter()
            out = client.call(name, table)
            seconds = time.perf_counter() - start
            if len(out) != table.num_rows:
                raise AssertionError(f"{name}: {len(out)} rows out for {table.num_rows} in")
            spot_check(name, table, out)
            timings.append((name, table.num_rows, seconds))
            for row, value in zip(table.slice(0, args.samples).to_pylist(),
                                  out.slice(0, args.samples).to_pylist()):
                call = ", ".join(fmt(v) for v in row.values())
                print(f"  {name}({call}) = {fmt(value)}")
            print()
    except (quiver.QuiverError, AssertionError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        if isinstance(e, quiver.Unavailable):
            print(f"is a node serving at {client.address}? Start one with `bin/quiver start`, "
                  "or set QUIVER_ADDRESS.", file=sys.stderr)
        return 1
    finally:
        client.close()

    print(f"{'function':<16}{'rows':>12}{'seconds':>10}{'rows/s':>14}")
    print("-" * 52)
    for name, rows, seconds in timings:
        print(f"{name:<16}{rows:>12,}{seconds:>10.3f}{rows / seconds:>14,.0f}")
    print(f"\nnode version {version}; all {len(timings)} built-ins OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
