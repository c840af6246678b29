"""The platform wheels as a user gets them: built by pyclient/build_wheels.py, installed
into a fresh virtual environment outside the source tree, then `quiver version`,
`quiver start/status/stop` and an accelerated function whose rows run on the node's
workers, which must run on the environment's own interpreter."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ELF_MACHINE = {"x86_64": 0x3E, "aarch64": 0xB7}
HOST = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(
    platform.machine().lower())
TIMEOUT_S = 600


def run(*args, env=None, cwd=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=TIMEOUT_S)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, REPO / "pyclient" / "build_wheels.py", "--out", out)
    found = {}
    for w in out.glob("*.whl"):
        machine = next(m for m in ELF_MACHINE if w.name.endswith(f"_{m}.whl"))
        found[machine] = w
    assert set(found) == set(ELF_MACHINE), sorted(p.name for p in out.iterdir())
    return found


@pytest.mark.parametrize("machine", sorted(ELF_MACHINE))
def test_each_wheel_carries_a_static_binary_of_its_platform(wheels, machine):
    w = wheels[machine]
    assert w.name.startswith("quiver-") and f"manylinux_2_17_{machine}" in w.name, w.name
    with zipfile.ZipFile(w) as z:
        info = z.getinfo("quiver/_bin/quiver")
        assert (info.external_attr >> 16) & 0o111, "the bundled binary is not executable"
        head = z.open(info).read(64)
        wheel_meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))).decode()
        entry = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
        names = z.namelist()
    assert head[:4] == b"\x7fELF"
    assert int.from_bytes(head[18:20], "little") == ELF_MACHINE[machine]
    assert f"Tag: py3-none-manylinux_2_17_{machine}" in wheel_meta
    assert "quiver = quiver._cli:main" in entry
    assert not any(n.startswith(("tests/", "quiver/tests/")) for n in names)


@pytest.fixture(scope="module")
def venv(wheels, tmp_path_factory) -> Path:
    if HOST not in wheels:
        pytest.skip(f"no wheel for this machine ({platform.machine()})")
    where = tmp_path_factory.mktemp("venv") / "v"
    run(sys.executable, "-m", "venv", where)
    # The pinned versions of the dependencies (already in pip's cache after make setup).
    run(where / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-c", REPO / "pyclient" / "requirements.txt", wheels[HOST])
    return where


def clean_env(venv: Path, **extra) -> dict:
    """The environment of a user of that venv: nothing of this checkout's settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QUIVER_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_installed_wheel_runs_a_node_and_an_accelerated_function(venv, tmp_path):
    home = Path(tempfile.mkdtemp(prefix="qw-"))  # outside the source tree; short socket path
    env = clean_env(venv)
    quiver = venv / "bin" / "quiver"
    py = venv / "bin" / "python"

    version = run(quiver, "version", env=env, cwd=home).stdout.split()
    pkg = run(py, "-c", "import quiver; print(quiver.__version__, quiver.__file__)", env=env, cwd=home)
    pkg_version, pkg_file = pkg.stdout.split()
    assert version == ["quiver", pkg_version]
    assert Path(pkg_file).is_relative_to(venv), f"quiver imported from {pkg_file}, not the venv"

    run_dir = home / "run"
    run(quiver, "start", "--run-dir", run_dir, "--listen", "127.0.0.1:0", "--workers", "1", env=env, cwd=home)
    try:
        addr = f"grpc+unix://{run_dir / 'quiver.sock'}"
        st = json.loads(run(quiver, "status", "--address", addr, "--json", env=env, cwd=home).stdout)
        assert st, "status --json printed nothing"
        script = home / "job.py"
        script.write_text(textwrap.dedent("""
            import json
            import sys
            import pandas as pd
            import quiver

            @quiver.accelerate(fallback="error")
            def shout(s: pd.Series) -> pd.Series:
                return s.str.upper() + "!" + sys.executable

            out = shout(pd.Series(["a", "bc", None, "d"]))
            print(json.dumps([None if pd.isna(v) else v for v in out]))
            with quiver.connect() as c:
                print(c.status()["nodes"][0]["python_tasks_total"])
        """))
        job = run(py, script, env=clean_env(venv, QUIVER_ADDRESS=addr, QUIVER_ADAPTIVE="0"), cwd=home)
        lines = job.stdout.strip().splitlines()
        rows = json.loads(lines[0])
        worker_python = str(py)
        assert rows[2] is None
        assert [r.split("!")[0] for r in rows if r is not None] == ["A", "BC", "D"]
        # The node's workers ran the rows, on the venv's interpreter (the default of the
        # installed command), and the node counted their tasks.
        assert {r.split("!", 1)[1] for r in rows if r is not None} == {worker_python}, rows
        assert int(lines[1]) >= 1
    finally:
        run(quiver, "stop", "--run-dir", run_dir, env=env, cwd=home, check=False)
    assert not (run_dir / "quiver.pid").exists()
