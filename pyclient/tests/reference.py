"""Plain-Python reference implementations of the node's built-ins, and test data generators.

Each reference follows the contract in the brief (DESIGN.md, "Built-ins"), written the
textbook way and independent of the node's Go code, so that a disagreement means one
of the two is wrong.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa

EARTH_RADIUS_KM = 6371.0
GEOHASH_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, a)))


def haversine_km_np(lat1, lon1, lat2, lon2) -> np.ndarray:
    """haversine_km over numpy arrays (for large inputs)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = np.radians(lat2 - lat1), np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(1.0, a)))


def sha256_hex(x: str | bytes) -> str:
    return hashlib.sha256(x.encode("utf-8") if isinstance(x, str) else x).hexdigest()


def levenshtein(a: str, b: str) -> int:
    """Edit distance over code points (insert, delete, substitute; each costs 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def jaro(s: str, t: str) -> float:
    """Jaro similarity over code points; equal empty strings 1.0, one empty 0.0."""
    if not s and not t:
        return 1.0
    if not s or not t:
        return 0.0
    window = max(0, max(len(s), len(t)) // 2 - 1)
    s_hit, t_hit = [False] * len(s), [False] * len(t)
    matches = 0
    for i, c in enumerate(s):
        for j in range(max(0, i - window), min(len(t), i + window + 1)):
            if not t_hit[j] and t[j] == c:
                s_hit[i] = t_hit[j] = True
                matches += 1
                break
    if matches == 0:
        return 0.0
    s_seq = [c for c, hit in zip(s, s_hit) if hit]
    t_seq = [c for c, hit in zip(t, t_hit) if hit]
    # t is half the matched characters that are out of order, not rounded (the formula as
    # Wikipedia gives it; Winkler's strcmp95 and Apache commons-text halve with integer
    # division, which differs when that count is odd).
    transpositions = sum(a != b for a, b in zip(s_seq, t_seq)) / 2
    m = matches
    return (m / len(s) + m / len(t) + (m - transpositions) / m) / 3


def jaro_winkler(s: str, t: str) -> float:
    """Jaro-Winkler: prefix scale 0.1, common prefix up to 4, boost always applied."""
    j = jaro(s, t)
    prefix = 0
    for a, b in zip(s[:4], t[:4]):
        if a != b:
            break
        prefix += 1
    return j + prefix * 0.1 * (1 - j)


def geohash_encode(lat: float, lon: float, precision: int) -> str:
    """Geohash of (lat, lon) in degrees: bits interleaved from longitude, base32."""
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    out, ch, nbits, lon_turn = [], 0, 0, True
    while len(out) < precision:
        if lon_turn:
            mid = (lon_lo + lon_hi) / 2
            if lon >= mid:
                ch, lon_lo = ch * 2 + 1, mid
            else:
                ch, lon_hi = ch * 2, mid
        else:
            mid = (lat_lo + lat_hi) / 2
            if lat >= mid:
                ch, lat_lo = ch * 2 + 1, mid
            else:
                ch, lat_hi = ch * 2, mid
        lon_turn = not lon_turn
        nbits += 1
        if nbits == 5:
            out.append(GEOHASH_BASE32[ch])
            ch, nbits = 0, 0
    return "".join(out)


def apply(fn, *columns: pa.Array) -> list:
    """fn row by row over Arrow columns: null if any argument is null."""
    rows = zip(*(c.to_pylist() for c in columns))
    return [None if any(v is None for v in row) else fn(*row) for row in rows]


# Test data.

WORDS = ["", "a", "kitten", "sitting", "MARTHA", "MARHTA", "DWAYNE", "DUANE", "DIXON",
         "DICKSONX", "naïve", "naive", "café", "cafe\u0301", "日本語", "日本", "🙂🙃", "🙃🙂",
         "Ünïcödé", "straße", "strasse", "abc", "cba", " ", "ab\u200bc", "ﬁ"]
ALPHABET = list("abcdeé日🙂Z ")


def strings(rng: np.random.Generator, n: int, null_rate: float = 0.1) -> pa.Array:
    """n strings: known words and random short Unicode strings (empty ones included), some null."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < null_rate:
            out.append(None)
        elif r < 0.4:
            out.append(WORDS[rng.integers(len(WORDS))])
        else:
            out.append("".join(rng.choice(ALPHABET, size=rng.integers(0, 13))))
    return pa.array(out, pa.string())


def floats(rng: np.random.Generator, n: int, lo: float, hi: float,
           null_rate: float = 0.1) -> pa.Array:
    values = rng.uniform(lo, hi, n)
    return pa.array(values, pa.float64(), mask=rng.random(n) < null_rate)


def coordinates(rng: np.random.Generator, n: int, null_rate: float = 0.1) -> tuple[pa.Array, pa.Array]:
    """(lat, lon) columns: mostly uniform, with the poles and the antimeridian mixed in."""
    lat = rng.uniform(-90, 90, n)
    lon = rng.uniform(-180, 180, n)
    edges = rng.random(n) < 0.02
    lat[edges] = rng.choice([-90.0, 90.0, 89.999999, -89.999999], size=edges.sum())
    lon[edges] = rng.choice([-180.0, 180.0, 179.999999, -179.999999], size=edges.sum())
    return (pa.array(lat, mask=rng.random(n) < null_rate),
            pa.array(lon, mask=rng.random(n) < null_rate))
