"""The UDF bodies of bench/run_all.py's Spark section, in a module of their own.

Spark's Python workers, the node's Python workers and Ray's workers all import
this module by name (bench/ is on their PYTHONPATH), so module-level caches (the
model, Ray's connection) live once per process, as they would in a real job.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from bench_udf import heavy_row  # the calibrated ~1 ms per-row function

# Each Spark Python worker that calls ray.init(address="auto") is a Ray job of its own with its own
# Ray workers. With Ray's defaults (soft limit of num_cpus idle workers, idle ones killed after 1 s)
# the jobs keep killing each other's workers, and every task waits for a new worker process
# (observed: model scoring 31 s instead of ~1 s). Let idle workers live, as a tuned cluster would.
RAY_SYSTEM_CONFIG = {"num_workers_soft_limit": 8, "idle_worker_killing_time_threshold_ms": 600_000}

MODEL_FEATURES = 6

# Heavy per-row work. The loop count is bound into each UDF (heavy_udf(n)).

def heavy_chunk(values: np.ndarray, n: int) -> np.ndarray:
    return np.fromiter((heavy_row(int(v), n) for v in values), dtype=np.int64, count=len(values))


def heavy_udf(n: int):
    def heavy(x: pd.Series) -> pd.Series:
        return pd.Series(heavy_chunk(x.to_numpy(), n), dtype="int64")
    return heavy


def double(x: pd.Series) -> pd.Series:
    return x * 2


# Model scoring: plain pandas UDFs load the pickled model once per Python worker.

_MODELS: dict = {}


def load_model(path: str):
    m = _MODELS.get(path)
    if m is None:
        with open(path, "rb") as f:
            m = _MODELS[path] = pickle.load(f)
    return m


def features(*cols) -> np.ndarray:
    """The model's feature matrix from the UDF's columns (id-derived, deterministic)."""
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def score_udf(path: str):
    def score(a: pd.Series, b: pd.Series, c: pd.Series, d: pd.Series, e: pd.Series,
              f: pd.Series) -> pd.Series:
        return pd.Series(load_model(path).predict(features(a, b, c, d, e, f)), dtype="float64")
    return score


def scorer_class(path: str):
    """A class for @quiver.accelerate: __init__ (once per node worker) loads the model."""

    class Scorer:
        model_path = path

        def __init__(self):
            with open(self.model_path, "rb") as fh:
                self.model = pickle.load(fh)

        def __call__(self, a: pd.Series, b: pd.Series, c: pd.Series, d: pd.Series, e: pd.Series,
                     f: pd.Series) -> pd.Series:
            return pd.Series(self.model.predict(features(a, b, c, d, e, f)), dtype="float64")

    return Scorer


# Ray inside the UDF (the Ray-on-Databricks pattern): the driver runs ray.init();
# each Spark Python worker connects with ray.init(address="auto") on first use and
# fans each batch out as @ray.remote tasks.

_RAY: dict = {}


def _ray():
    import ray
    if not ray.is_initialized():
        ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
    if not _RAY:
        _RAY["heavy"] = ray.remote(heavy_chunk)
        _RAY["double"] = ray.remote(lambda v: v * 2)
        _RAY["score"] = ray.remote(lambda path, X: load_model(path).predict(X))
    return ray, _RAY  # the module's dict: closures pickled by value hold a copy of the global


def _chunks(n_rows: int, pieces: int) -> list[slice]:
    bounds = np.linspace(0, n_rows, max(1, min(pieces, n_rows)) + 1).astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def ray_heavy_udf(n: int, rows_per_task: int = 100):
    def heavy(x: pd.Series) -> pd.Series:
        ray, tasks = _ray()
        v = x.to_numpy()
        refs = [tasks["heavy"].remote(v[s], n) for s in _chunks(len(v), -(-len(v) // rows_per_task))]
        return pd.Series(np.concatenate(ray.get(refs)), dtype="int64")
    return heavy


def ray_double_udf(pieces: int = 2):
    def dbl(x: pd.Series) -> pd.Series:
        ray, tasks = _ray()
        v = x.to_numpy()
        return pd.Series(np.concatenate(ray.get([tasks["double"].remote(v[s]) for s in _chunks(len(v), pieces)])))
    return dbl


def ray_score_udf(path: str, pieces: int = 2):
    def score(a: pd.Series, b: pd.Series, c: pd.Series, d: pd.Series, e: pd.Series,
              f: pd.Series) -> pd.Series:
        ray, tasks = _ray()
        X = features(a, b, c, d, e, f)
        refs = [tasks["score"].remote(path, X[s]) for s in _chunks(len(X), pieces)]
        return pd.Series(np.concatenate(ray.get(refs)), dtype="float64")
    return score


def train_model(path: str, samples: int = 8_000, seed: int = 0):
    """A RandomForestRegressor on generated data, pickled to path."""
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (samples, MODEL_FEATURES))
    y = np.sin(3 * X[:, 0]) + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + 0.1 * rng.normal(size=samples)
    model = RandomForestRegressor(n_estimators=40, max_depth=12, n_jobs=1, random_state=seed).fit(X, y)
    with open(path, "wb") as f:
        pickle.dump(model, f)
    return model
