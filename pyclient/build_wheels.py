"""Build the quiver wheels: the Python package with the node's binary inside, one wheel per
Linux architecture, tagged for that platform.

    python pyclient/build_wheels.py [--arch amd64|arm64 ...] [--out dist]

For each architecture the Go binary is cross-compiled with CGO_ENABLED=0 (a static
executable that needs no system library) into quiver/_bin/quiver of a staged copy of
the package, the copy is built into a wheel, and the wheel is retagged from
py3-none-any to py3-none-manylinux_2_17_<machine>.manylinux2014_<machine>. The binary
reports the package's version (quiver.__version__), and `quiver` (the console script)
runs it with its Python workers on the interpreter the wheel was installed into.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PYCLIENT = Path(__file__).resolve().parent
ROOT = PYCLIENT.parent
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}


def version() -> str:
    text = (PYCLIENT / "quiver" / "__init__.py").read_text()
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not m:
        sys.exit("build_wheels: no __version__ in quiver/__init__.py")
    return m.group(1)


def platform_tag(arch: str) -> str:
    machine = MACHINES[arch]
    return f"manylinux_2_17_{machine}.manylinux2014_{machine}"


def build(arch: str, out: Path, ver: str) -> Path:
    with tempfile.TemporaryDirectory(prefix="quiver-wheel-") as tmp:
        stage = Path(tmp) / "pyclient"
        shutil.copytree(PYCLIENT, stage, ignore=shutil.ignore_patterns(
            "tests", "_bin", "*.egg-info", "__pycache__", ".pytest_cache", "build", "dist",
            "build_wheels.py"))
        binary = stage / "quiver" / "_bin" / "quiver"
        binary.parent.mkdir()
        env = dict(os.environ, CGO_ENABLED="0", GOOS="linux", GOARCH=arch)
        subprocess.run([os.environ.get("GO", "go"), "build", "-trimpath",
                        "-ldflags", f"-s -w -X main.version={ver}", "-o", str(binary), "./cmd/quiver"],
                       cwd=ROOT, env=env, check=True)
        binary.chmod(0o755)
        built = Path(tmp) / "dist"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(built), str(stage)], check=True)
        [pure] = built.glob("quiver-*-py3-none-any.whl")
        subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove",
                        "--platform-tag", platform_tag(arch), str(pure)], check=True, stdout=subprocess.DEVNULL)
        [wheel] = built.glob(f"quiver-*_{MACHINES[arch]}.whl")
        out.mkdir(parents=True, exist_ok=True)
        dest = out / wheel.name
        shutil.move(str(wheel), dest)
        return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", action="append", choices=sorted(MACHINES),
                    help="architecture to build for (repeatable; default: all)")
    ap.add_argument("--out", default=str(ROOT / "dist"), help="directory for the wheels")
    args = ap.parse_args()
    ver = version()
    for arch in args.arch or sorted(MACHINES):
        print(build(arch, Path(args.out), ver))
    return 0


if __name__ == "__main__":
    sys.exit(main())
