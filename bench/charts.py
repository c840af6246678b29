"""Bar charts of one bench/run_all.py run: bench/charts/{transport,spark,loadtest}.png."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _bars(ax, labels, values, colors=None, fmt="{:.0f}"):
    bars = ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    for b, v in zip(bars, values):
        ax.annotate(fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                    ha="center", va="bottom", fontsize=7)


def transport(t: dict, path: str, subtitle: str):
    labels, vals, colors = [], [], []
    for tr in ("tcp", "unix"):
        for key, lab, col in ((f"quiver_{tr}", f"Quiver {tr}", "tab:blue"),
                              (f"echo_{tr}", f"pyarrow echo {tr}", "tab:orange")):
            labels.append(lab)
            vals.append(t["flight"][key]["bytes_per_s"] / 1e6)
            colors.append(col)
        labels.append(f"loopback limit {tr}")
        vals.append(t["limit"][tr] / 1e6)
        colors.append("tab:gray")
    for name, v in t.get("go", {}).get("bench", {}).items():
        if "MB/s" in v:
            labels.append(f"Go client {name.replace('Benchmark', '')}")
            vals.append(v["MB/s"])
            colors.append("tab:green")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    _bars(ax, labels, vals, colors)
    ax.set_ylabel("MB/s (payload, one way)")
    ax.set_title("identity over Flight, 64k-row int64 batches\n" + subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def spark(s: dict, path: str, subtitle: str):
    tm = s["times"]
    works = ["heavy", "cheap", "model"]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.8))
    names = {"plain": "plain", "quiver": "Quiver", "ray": "Ray in UDF"}
    colors = {"plain": "tab:gray", "quiver": "tab:blue", "ray": "tab:purple"}
    titles = {"heavy": f"heavy per-row, skewed\n{s['heavy_rows']:,} rows",
              "cheap": f"cheap x*2\n{s['cheap_rows']:,} rows", "model": f"model scoring\n{s['model_rows']:,} rows"}
    names["quiver_rpt"] = "Quiver rpt=5k"
    colors["quiver_rpt"] = "tab:cyan"
    for ax, w in zip(axes, works):
        vs = [v for v in ("plain", "quiver", "quiver_rpt", "ray") if w in tm.get(v, {})]
        _bars(ax, [names[v] for v in vs], [tm[v][w] for v in vs], [colors[v] for v in vs], "{:.2f}")
        ax.set_title(titles[w], fontsize=9)
        ax.set_ylabel("wall s (lower is better)", fontsize=8)
    axes[2].text(0.0, -0.32, "rpt=5k: rows_per_task=5000", transform=axes[2].transAxes, fontsize=7)
    fig.suptitle("Spark local[2] pandas UDFs: " + subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def loadtest(lt: dict, path: str, subtitle: str):
    runs = [r for r in lt["runs"] if "error" not in r]
    fns = sorted({r["function"] for r in runs})
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    width = 0.8 / max(1, len(fns))
    concs = sorted({r["concurrency"] for r in runs})
    for i, fn in enumerate(fns):
        rs = {r["concurrency"]: r for r in runs if r["function"] == fn}
        xs = [j + i * width for j in range(len(concs))]
        a1.bar(xs, [rs[c]["rows_per_s"] / 1e6 if c in rs else 0 for c in concs], width, label=fn)
        a2.bar(xs, [rs[c]["latency_us"]["p99"] / 1e3 if c in rs else 0 for c in concs], width, label=f"{fn} p99")
        a2.scatter(xs, [rs[c]["latency_us"]["p50"] / 1e3 if c in rs else 0 for c in concs], color="k", s=10,
                   zorder=3, label="p50" if i == 0 else None)
    for ax in (a1, a2):
        ax.set_xticks([j + width * (len(fns) - 1) / 2 for j in range(len(concs))])
        ax.set_xticklabels([f"c={c}" for c in concs])
        ax.legend(fontsize=7)
    a1.set_ylabel("M rows/s")
    a2.set_ylabel("latency ms (bar p99, dot p50)")
    a2.set_yscale("log")
    fig.suptitle("quiver loadtest, closed loop, 10k-row batches: " + subtitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_all(res: dict, out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    sub = f"{res['date']}{', QUICK' if res.get('quick') else ''}"
    done = []
    for name, fn, ok in (("transport", transport, lambda d: "flight" in d),
                         ("spark", spark, lambda d: "times" in d),
                         ("loadtest", loadtest, lambda d: "runs" in d)):
        d = res.get(name)
        path = os.path.join(out_dir, f"{name}.png")
        if d and ok(d):
            fn(d, path, sub)
            done.append(path)
        elif os.path.exists(path):
            os.remove(path)  # never leave a chart from another run
    return done
