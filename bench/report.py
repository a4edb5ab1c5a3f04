"""Benchmark results as JSON, a Markdown table with the targets, and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
CEILING = "bare asyncio (ceiling)"
PYTHON_HL7 = "python-hl7 server"
ACK_PATH = "ins-engine ACK path"
WARM = "ins-engine end-to-end, warm cache"
COLD = "ins-engine end-to-end, cold cache, INSi 50 ms"
HALF_RATE = "ins-engine ACK path at half its maximum rate"
STORE_SQLITE = "ins-engine end-to-end, no step, SQLite, one engine"
STORE_POSTGRESQL = "ins-engine end-to-end, no step, PostgreSQL, one engine"
STORE_POSTGRESQL_2 = "ins-engine end-to-end, no step, PostgreSQL, two engines"
INSI_BOUND = 8 / 0.050  # max_concurrency / latency of the cold setup, lookups per second


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB, Python "
        f"{platform.python_version()}"
    )


def throughput(summary: dict[str, Any]) -> float:
    """Delivered messages/s where a receiver counted them, else acknowledged messages/s."""
    return float(summary.get("delivered_per_s", summary["msg_per_s"]))


def targets(results: dict[str, dict[int, dict[str, Any]]]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of the benchmark issue."""
    rows = []
    k8 = 8
    if WARM in results and PYTHON_HL7 in results and k8 in results[WARM]:
        ratio = throughput(results[WARM][k8]) / results[PYTHON_HL7][k8]["msg_per_s"]
        rows.append(
            ("end-to-end (K=8, warm) ≥ 4× python-hl7 bare server", f"{ratio:.2f}×", ratio >= 4)
        )
    if ACK_PATH in results:
        for k, summary in results[ACK_PATH].items():
            ratio = summary["msg_per_s"] / results[CEILING][k]["msg_per_s"]
            rows.append((f"ACK path ≥ 50% of bare asyncio (K={k})", f"{ratio:.0%}", ratio >= 0.5))
    half = results.get(HALF_RATE, {})
    for k, summary in half.items():
        rows.append(
            (
                f"p99 ACK latency ≤ 2 ms at half the maximum rate (K={k})",
                f"{summary['p99_ms']:.2f} ms",
                summary["p99_ms"] <= 2,
            )
        )
    if COLD in results:
        best = max(throughput(summary) for summary in results[COLD].values())
        share = best / INSI_BOUND
        rows.append(
            (
                "cold cache: lookups/s ≥ 80% of max_concurrency / latency (160/s)",
                f"{best:.0f}/s = {share:.0%}",
                share >= 0.8,
            )
        )
    return rows


def markdown(results: dict[str, dict[int, dict[str, Any]]], soak: dict[str, Any] | None) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on {machine()}, loopback, one load generator process "
        "(K connections, one outstanding message each).",
        "",
        "| configuration | K | msg/s | × bare | ACK p50 ms | ACK p99 ms | e2e p50 ms | "
        "e2e p99 ms | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_k in results.items():
        for k, summary in by_k.items():
            ceiling = results[CEILING].get(k, {}).get("msg_per_s")
            ratio = f"{throughput(summary) / ceiling:.2f}" if ceiling else "—"
            lines.append(
                f"| {name} | {k} | {throughput(summary):.0f} | {ratio} | "
                f"{summary['p50_ms']:.2f} | {summary['p99_ms']:.2f} | "
                f"{summary.get('e2e_p50_ms', '—')} | {summary.get('e2e_p99_ms', '—')} | "
                f"{summary['peak_rss_mb']} |"
            )
    lines += store_ratios(results)
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(results)]
    if soak:
        lines += [
            "",
            f"Replay of {soak['messages']:,} messages: RSS growth {soak['rss_growth_mb']} MB "
            f"(target ≤ 100), throughput first 10% {soak['first_rate']:.0f} msg/s, last 10% "
            f"{soak['last_rate']:.0f} msg/s (ratio {soak['flatness']:.2f}).",
        ]
    return "\n".join(lines) + "\n"


def store_ratios(results: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """Delivered throughput of the PostgreSQL store (one engine, two engines) against the
    SQLite store's (one engine), per K, measured in the same run."""
    if STORE_SQLITE not in results:
        return []
    lines = [
        "",
        "| store, engines | K | delivered msg/s | × SQLite, one engine |",
        "|---|---|---|---|",
    ]
    for name in (STORE_SQLITE, STORE_POSTGRESQL, STORE_POSTGRESQL_2):
        for k, summary in results.get(name, {}).items():
            base = results[STORE_SQLITE].get(k)
            ratio = f"{throughput(summary) / throughput(base):.2f}" if base else "—"
            short = name.removeprefix("ins-engine end-to-end, no step, ")
            lines.append(f"| {short} | {k} | {throughput(summary):.0f} | {ratio} |")
    return lines


def chart(results: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in results if name != HALF_RATE]  # a latency run, not a throughput
    ks = sorted({k for by_k in results.values() for k in by_k})
    figure, axes = plt.subplots(figsize=(11, 5.5))
    width = 0.8 / len(ks)
    for index, k in enumerate(ks):
        values = [throughput(results[name][k]) if k in results[name] else 0 for name in names]
        positions = [i + index * width for i in range(len(names))]
        axes.bar(positions, values, width, label=f"K = {k}")
    axes.set_xticks([i + width * (len(ks) - 1) / 2 for i in range(len(names))])
    axes.set_xticklabels([textwrap.fill(name, 18) for name in names], fontsize=8)
    axes.set_ylabel("messages per second (log scale)")
    axes.set_yscale("log")
    axes.set_title(f"Throughput by configuration — {machine()}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_reports(
    results: dict[str, dict[int, dict[str, Any]]], soak: dict[str, Any] | None = None
) -> str:
    """Write latest.json, latest.md and throughput.png; returns the Markdown."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "machine": machine(),
        "at": datetime.now(UTC).isoformat(),
        "results": results,
        "soak": soak,
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    text = markdown(results, soak)
    (RESULTS / "latest.md").write_text(text, encoding="utf-8")
    chart(results, RESULTS / "throughput.png")
    return text
