"""The machine a benchmark runs on: what it is, its load, and CPU time by process."""

from __future__ import annotations

import os
import platform

import pandas as pd
import pyarrow as pa


def machine() -> str:
    model = ""
    mem_gib = 0.0
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
        with open("/proc/meminfo") as f:
            mem_gib = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        pass
    return (f"{os.cpu_count()} cores{f' ({model})' if model else ''}, {mem_gib:.0f} GiB, "
            f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
            f"pyarrow {pa.__version__}, pandas {pd.__version__}")


def load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def proc_stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def proc_cpu_s(pid: int) -> float:
    st = proc_stat(pid)  # fields from state on: utime and stime are the 12th and 13th
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK") if len(st) > 12 else 0.0


def proc_ppid(pid: int) -> int:
    st = proc_stat(pid)
    return int(st[1]) if len(st) > 1 else -1


def self_cpu_s() -> float:
    t = os.times()
    return t.user + t.system
