"""Benchmark results as JSON, a Markdown table with the targets, and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.fsync import durable_limit

RESULTS = Path(__file__).resolve().parent / "results"
CEILING = "bare asyncio (ceiling)"
DELIVERY_CEILING = "ordered delivery ceiling (bare sender, one in flight, to the receiver)"
PYTHON_HL7 = "python-hl7 server"
ACK_PATH = "ins-engine ACK path"
WARM = "ins-engine end-to-end, warm cache"
WARM_ONE_PROCESS = "ins-engine end-to-end, warm cache, one process"
COLD = "ins-engine end-to-end, cold cache, INSi 50 ms"
HALF_RATE = "ins-engine ACK path at half its maximum rate"
STORE_SQLITE = "ins-engine end-to-end, no step, SQLite, one engine"
STORE_POSTGRESQL = "ins-engine end-to-end, no step, PostgreSQL, one engine"
STORE_POSTGRESQL_2 = "ins-engine end-to-end, no step, PostgreSQL, two engines"
# The FHIR destination against the MLLP one: the same engine, route and messages (one per
# patient, each its own PID-3 PI); only the destination differs.
FHIR_CREATE_MLLP = "ins-engine A28 new patients, to MLLP (fhir baseline)"
FHIR_CREATE = "ins-engine A28 new patients, to fhir (conditional update creates)"
FHIR_UPDATE_MLLP = "ins-engine A31 same patients, to MLLP (fhir baseline)"
FHIR_UPDATE = "ins-engine A31 same patients, to fhir (conditional update updates)"
FHIR_PAIRS = (
    ("A28, new patients", FHIR_CREATE_MLLP, FHIR_CREATE),
    ("A31, same patients", FHIR_UPDATE_MLLP, FHIR_UPDATE),
)
INSI_BOUND = 8 / 0.050  # max_concurrency / latency of the cold setup, lookups per second
CPU_BUDGET_US = 300
# How the 300 µs are shared among the stages `cpu_stages` measures.
STAGE_BUDGET_US = {
    "receive, store, acknowledge": 100,
    "route and deliver": 150,
    "enrich (warm cache)": 50,
}
PREVIOUS = RESULTS / "previous.json"  # the run before the latest performance work


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB, Python "
        f"{platform.python_version()}"
    )


def throughput(summary: dict[str, Any]) -> float:
    """Delivered messages/s where a receiver counted them, else acknowledged messages/s."""
    return float(summary.get("delivered_per_s", summary["msg_per_s"]))


def cpu_stages(
    results: dict[str, dict[int, dict[str, Any]]], k: int = 8
) -> list[tuple[str, float]]:
    """Engine CPU per message by stage at K connections, from setups that add one stage
    each (measured in the same run): receive, store and answer (the ACK path); route and
    deliver (no step, minus the ACK path); enrich with a warm cache (warm, minus no step)."""
    cpu = {
        name: results[name][k]["cpu_us_per_msg"]
        for name in (ACK_PATH, STORE_SQLITE, WARM)
        if k in results.get(name, {}) and "cpu_us_per_msg" in results[name][k]
    }
    stages = []
    if ACK_PATH in cpu:
        stages.append(("receive, store, acknowledge", cpu[ACK_PATH]))
        if STORE_SQLITE in cpu:
            stages.append(("route and deliver", cpu[STORE_SQLITE] - cpu[ACK_PATH]))
            if WARM in cpu:
                stages.append(("enrich (warm cache)", cpu[WARM] - cpu[STORE_SQLITE]))
    return stages


def previous_results() -> dict[str, Any] | None:
    """The results kept from the run before the performance work, if any."""
    if not PREVIOUS.exists():
        return None
    document: dict[str, Any] = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    document["results"] = {
        name: {int(k): summary for k, summary in by_k.items()}
        for name, by_k in document["results"].items()
    }
    return document


def targets(
    results: dict[str, dict[int, dict[str, Any]]],
    disk: dict[str, float] | None = None,
    soak: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each target of the performance issues."""
    rows: list[tuple[str, str, bool]] = []
    k8 = 8
    warm8 = results.get(WARM, {}).get(k8)
    if warm8 and "cpu_us_per_msg" in warm8:
        cpu = warm8["cpu_us_per_msg"]
        rows.append(
            (
                f"engine CPU per delivered message, warm, K=8 ≤ {CPU_BUDGET_US} µs",
                f"{cpu:.0f} µs",
                cpu <= CPU_BUDGET_US,
            )
        )
        processes = warm8.get("processes", 1)
        rows.append(
            ("the engine uses both cores (more than one process)", f"{processes}", processes > 1)
        )
        for k in (8, 32):
            both, alone = results[WARM].get(k), results.get(WARM_ONE_PROCESS, {}).get(k)
            if both and alone:
                ratio = throughput(both) / throughput(alone)
                rows.append(
                    (
                        f"end-to-end (K={k}, warm): two processes deliver no less than one",
                        f"{ratio:.2f}× (e2e p50 {both.get('e2e_p50_ms')} ms against "
                        f"{alone.get('e2e_p50_ms')} ms)",
                        ratio >= 1.0,
                    )
                )
    if ACK_PATH in results and disk:
        for k in (8, 32):
            summary, bare = results[ACK_PATH].get(k), results[CEILING].get(k)
            if summary and bare:
                limit = durable_limit(k, disk["median_ms"], bare["msg_per_s"])
                share = summary["msg_per_s"] / limit
                rows.append(
                    (
                        f"ACK path ≥ 70% of the durable limit (K={k}, limit {limit:.0f}/s)",
                        f"{summary['msg_per_s']:.0f}/s = {share:.0%}",
                        share >= 0.7,
                    )
                )
    for k, summary in results.get(HALF_RATE, {}).items():
        if disk:
            bound = disk["p99_ms"] + 1
            rows.append(
                (
                    f"p99 ACK at half the maximum rate (K={k}) ≤ fsync p99 + 1 ms = {bound:.2f} ms",
                    f"{summary['p99_ms']:.2f} ms",
                    summary["p99_ms"] <= bound,
                )
            )
    if warm8 and k8 in results.get(PYTHON_HL7, {}):
        ratio = throughput(warm8) / results[PYTHON_HL7][k8]["msg_per_s"]
        rows.append(("end-to-end (K=8, warm) ≥ 3.5× python-hl7", f"{ratio:.2f}×", ratio >= 3.5))
    if warm8 and 1 in results.get(DELIVERY_CEILING, {}):
        share = throughput(warm8) / results[DELIVERY_CEILING][1]["msg_per_s"]
        rows.append(
            (
                "end-to-end (K=8, warm) ≥ 80% of the ordered delivery ceiling",
                f"{share:.0%}",
                share >= 0.8,
            )
        )
    sqlite8 = results.get(STORE_SQLITE, {}).get(k8)
    postgresql8 = results.get(STORE_POSTGRESQL, {}).get(k8)
    if sqlite8 and postgresql8:
        ratio = throughput(postgresql8) / throughput(sqlite8)
        rows.append(
            ("PostgreSQL, one engine, no step (K=8) ≥ 0.8× SQLite", f"{ratio:.2f}×", ratio >= 0.8)
        )
    rows += metrics_targets(results)
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
    if soak:
        rows.append(
            (
                "RSS growth over the long replay ≤ 100 MB",
                f"{soak['rss_growth_mb']} MB",
                soak["rss_growth_mb"] <= 100,
            )
        )
        before = (previous or {}).get("soak") or {}
        if before.get("first_rate"):
            ratio = soak["first_rate"] / before["first_rate"]
            rows.append(
                (
                    "long replay throughput no lower than before (previous run)",
                    f"{soak['first_rate']:.0f} msg/s = {ratio:.2f}× {before['first_rate']:.0f}",
                    ratio >= 0.9,
                )
            )
    return rows


def metrics_targets(results: dict[str, dict[int, dict[str, Any]]]) -> list[tuple[str, str, bool]]:
    """Whether each engine setup's /metrics counted every message it was sent (answered) and,
    where a receiver takes them, delivered."""
    missed = []
    checked = 0
    for name, by_k in results.items():
        for k, summary in by_k.items():
            if "metrics_answered" not in summary:
                continue
            checked += 1
            sent = summary["messages_sent"]
            delivered = summary["metrics_delivered"] if name != ACK_PATH else sent
            if summary["metrics_answered"] < sent or delivered < sent:
                missed.append(f"{name} K={k}")
    if not checked:
        return []
    measured = f"{checked - len(missed)} of {checked} runs" + (
        f" (short: {', '.join(missed)})" if missed else ""
    )
    return [("the metrics count every message answered and delivered", measured, not missed)]


def markdown(
    results: dict[str, dict[int, dict[str, Any]]],
    soak: dict[str, Any] | None,
    disk: dict[str, float] | None = None,
    fhir_path: dict[str, float] | None = None,
) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Measured {when} on {machine()}, loopback, one load generator process "
        "(K connections, one outstanding message each).",
        "",
        "| configuration | K | msg/s | previous msg/s | × bare | CPU µs/msg | ACK p50 ms | "
        "ACK p99 ms | e2e p50 ms | e2e p99 ms | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    previous = previous_results()
    before = previous["results"] if previous else {}
    for name, by_k in results.items():
        for k, summary in by_k.items():
            ceiling = results[CEILING].get(k, {}).get("msg_per_s")
            ratio = f"{throughput(summary) / ceiling:.2f}" if ceiling else "—"
            old = before.get(name, {}).get(k)
            lines.append(
                f"| {name} | {k} | {throughput(summary):.0f} | "
                f"{f'{throughput(old):.0f}' if old else '—'} | {ratio} | "
                f"{summary.get('cpu_us_per_msg', '—')} | "
                f"{summary['p50_ms']:.2f} | {summary['p99_ms']:.2f} | "
                f"{summary.get('e2e_p50_ms', '—')} | {summary.get('e2e_p99_ms', '—')} | "
                f"{summary['peak_rss_mb']} |"
            )
    if disk:
        lines += [
            "",
            f"A 4 KB write and its fsync where the store lives: median {disk['median_ms']} ms, "
            f"p99 {disk['p99_ms']} ms ({disk['samples']} samples).",
        ]
    lines += stage_table(results, before)
    lines += store_ratios(results)
    lines += fhir_ratios(results, fhir_path)
    lines += target_table(results, disk, soak, previous)
    if soak:
        lines += [
            "",
            f"Replay of {soak['messages']:,} messages: RSS growth {soak['rss_growth_mb']} MB "
            f"(target ≤ 100), throughput first 10% {soak['first_rate']:.0f} msg/s, last 10% "
            f"{soak['last_rate']:.0f} msg/s (ratio {soak['flatness']:.2f}).",
        ]
    return "\n".join(lines) + "\n"


def stage_table(
    results: dict[str, dict[int, dict[str, Any]]], before: dict[str, dict[int, dict[str, Any]]]
) -> list[str]:
    """Engine CPU per message by stage, against its budget and the previous run."""
    stages = cpu_stages(results)
    if not stages:
        return []
    old = dict(cpu_stages(before)) if before else {}
    rows = [(stage, cpu, STAGE_BUDGET_US.get(stage), old.get(stage)) for stage, cpu in stages]
    warm8 = results.get(WARM, {}).get(8, {})
    if "engine_process_cpu_us_per_msg" in warm8:
        engine = warm8["engine_process_cpu_us_per_msg"]
        old8 = before.get(WARM, {}).get(8, {}) if before else {}
        old_engine = old8.get("engine_process_cpu_us_per_msg")
        rows += [
            ("end-to-end warm, in the engine process", engine, None, old_engine),
            (
                "end-to-end warm, in its delivery process",
                warm8["cpu_us_per_msg"] - engine,
                None,
                old8["cpu_us_per_msg"] - old_engine if old_engine is not None else None,
            ),
        ]
    lines = [
        "",
        "| stage (K=8) | engine CPU µs per message | budget | previous run |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {stage} | {cpu:.0f} | {budget if budget is not None else '—'} | "
        f"{f'{was:.0f}' if was is not None else '—'} |"
        for stage, cpu, budget, was in rows
    ]
    return lines


def target_table(
    results: dict[str, dict[int, dict[str, Any]]],
    disk: dict[str, float] | None,
    soak: dict[str, Any] | None,
    previous: dict[str, Any] | None,
) -> list[str]:
    """Each target met or not, beside what the previous run measured for it (a target's
    text names limits measured in its own run: rows are matched by their text without
    figures, in order)."""
    old: dict[str, list[str]] = {}
    if previous:
        for text, measured, ok in targets(
            previous["results"], previous.get("fsync"), previous.get("soak")
        ):
            old.setdefault(_target_kind(text), []).append(
                f"{measured} ({'met' if ok else 'not met'})"
            )
    lines = ["", "| target | measured | met | previous run |", "|---|---|---|---|"]
    for text, measured, ok in targets(results, disk, soak, previous):
        kept = old.get(_target_kind(text))
        was = kept.pop(0) if kept else "—"
        lines.append(f"| {text} | {measured} | {'yes' if ok else '**no**'} | {was} |")
    return lines


def _target_kind(text: str) -> str:
    """A target's text without its figures: the same target in another run."""
    return re.sub(r"\d+(\.\d+)?", "#", text)


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


def fhir_ratios(
    results: dict[str, dict[int, dict[str, Any]]], fhir_path: dict[str, float] | None = None
) -> list[str]:
    """Delivered throughput of the FHIR destination against the MLLP destination's, per load
    and K, measured in the same run, with the CPU per delivered message of the engine (its
    delivery process apart) and of the FHIR server; then the FHIR path's stages alone."""
    lines: list[str] = []
    if any(fhir in results for _, _, fhir in FHIR_PAIRS):
        lines += [
            "",
            "| load | K | MLLP msg/s | FHIR msg/s | FHIR / MLLP | engine CPU µs/msg, MLLP "
            "(delivery process) | engine CPU µs/msg, FHIR (delivery process) | "
            "FHIR server (Node) CPU µs/msg | FHIR e2e p50 ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
    for load, mllp_name, fhir_name in FHIR_PAIRS:
        for k, fhir in results.get(fhir_name, {}).items():
            mllp = results.get(mllp_name, {}).get(k)
            ratio = f"{throughput(fhir) / throughput(mllp):.2f}" if mllp else "—"
            lines.append(
                f"| {load} | {k} | {f'{throughput(mllp):.0f}' if mllp else '—'} | "
                f"{throughput(fhir):.0f} | {ratio} | {_cpu_split(mllp)} | {_cpu_split(fhir)} | "
                f"{fhir.get('fhir_server_cpu_us_per_msg', 0):.0f} | {fhir.get('e2e_p50_ms', '—')} |"
            )
    if fhir_path:
        lines += ["", "| FHIR path, in the delivery process, measured alone | µs per message |"]
        lines += ["|---|---|"]
        lines += [
            f"| {stage} | {cost:.0f} |"
            for stage, cost in fhir_path.items()
            if stage != "body_bytes"
        ]
    return lines


def _cpu_split(summary: dict[str, Any] | None) -> str:
    """`total (delivery process)` CPU µs per message of an engine setup."""
    if not summary or "cpu_us_per_msg" not in summary:
        return "—"
    total = summary["cpu_us_per_msg"]
    delivery = total - summary.get("engine_process_cpu_us_per_msg", total)
    return f"{total:.0f} ({delivery:.0f})"


def chart(results: dict[str, dict[int, dict[str, Any]]], path: Path) -> None:
    """Throughput per configuration and K, with the previous run's figure marked on each
    bar (black tick) where it was measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    previous = previous_results()
    before = previous["results"] if previous else {}
    names = [name for name in results if name != HALF_RATE]  # a latency run, not a throughput
    ks = sorted({k for by_k in results.values() for k in by_k})
    figure, axes = plt.subplots(figsize=(12, 6))
    width = 0.8 / len(ks)
    for index, k in enumerate(ks):
        values = [throughput(results[name][k]) if k in results[name] else 0 for name in names]
        positions = [i + index * width for i in range(len(names))]
        axes.bar(positions, values, width, label=f"K = {k}")
        old = [
            (x, throughput(before[n][k]))
            for x, n in zip(positions, names, strict=True)
            if k in before.get(n, {})
        ]
        if old:
            axes.scatter(
                *zip(*old, strict=True),
                marker="_",
                s=300,
                color="black",
                zorder=3,
                label="previous run" if index == 0 else None,
            )
    axes.set_xticks([i + width * (len(ks) - 1) / 2 for i in range(len(names))])
    axes.set_xticklabels([textwrap.fill(name, 18) for name in names], fontsize=7)
    axes.set_ylabel("messages per second (log scale)")
    axes.set_yscale("log")
    axes.set_title(f"Throughput by configuration — {machine()}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_reports(
    results: dict[str, dict[int, dict[str, Any]]],
    soak: dict[str, Any] | None = None,
    disk: dict[str, float] | None = None,
    fhir_path: dict[str, float] | None = None,
) -> str:
    """Write latest.json, latest.md and throughput.png; returns the Markdown."""
    RESULTS.mkdir(exist_ok=True)
    document = {
        "machine": machine(),
        "at": datetime.now(UTC).isoformat(),
        "results": results,
        "soak": soak,
        "fsync": disk,
        "fhir_path": fhir_path,
    }
    (RESULTS / "latest.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    text = markdown(results, soak, disk, fhir_path)
    (RESULTS / "latest.md").write_text(text, encoding="utf-8")
    chart(results, RESULTS / "throughput.png")
    return text
