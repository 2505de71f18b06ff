"""Turns the rounds into bench/results/: latest.json (the issue's shape), latest.md, latest.png."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench import beside
from bench.clients import CLIENTS, LABELS

#: Figure key -> (where it is in a round's result, label, unit, higher is better).
ROUND_FIGURES: dict[str, tuple[tuple[str, str], str, str, bool]] = {
    "enqueue_msgs_per_s": (("bulk", "enqueue_msgs_per_s"), "1. bulk enqueue", "msgs/s", True),
    "drain_msgs_per_s": (("bulk", "drain_msgs_per_s"), "1. bulk drain (8 threads)", "msgs/s", True),
    "bulk_requests_per_msg": (("bulk", "requests_per_msg"), "4. bulk requests/msg", "req/msg", False),
    "e2e_msgs_per_s": (("steady1", "e2e_msgs_per_s"), "2. steady x1 end-to-end", "msgs/s", True),
    "steady_requests_per_msg": (
        ("steady1", "requests_per_msg"),
        "4. steady x1 requests/msg",
        "req/msg",
        False,
    ),
    "latency_p50_ms": (("steady1", "latency_p50_ms"), "2. steady x1 latency p50", "ms", False),
    "latency_p99_ms": (("steady1", "latency_p99_ms"), "2. steady x1 latency p99", "ms", False),
    "steady8_msgs_per_s": (("steady8", "e2e_msgs_per_s"), "3. steady x8 end-to-end", "msgs/s", True),
    "steady8_requests_per_msg": (
        ("steady8", "requests_per_msg"),
        "4. steady x8 requests/msg",
        "req/msg",
        False,
    ),
}
ONCE_FIGURES = ["idle_requests_per_min", "recovery_s", "long_retry_kept"]
#: How long each client hides a received message (what a killed worker's messages wait for).
VISIBILITY = {
    "boto3_batched": "30 s (the queue's default)",
    "offload": "60 s lease, extended by heartbeats while held",
    "dramatiq_sqs": "43,200 s (12 h, its default)",
    "celery": "1,800 s (30 min, kombu's default)",
}
PEERS = ["boto3_batched", "dramatiq_sqs", "celery"]
#: The hand-batched loop: the practical limit the others are measured against.
LIMIT = "boto3_batched"


def one_line(result: dict[str, Any]) -> str:
    if "error" in result and "bulk" not in result:
        return "failed"
    figures = round_figures(result)
    return ", ".join(f"{key}={_fmt(value)}" for key, value in figures.items())


def round_figures(result: dict[str, Any]) -> dict[str, float | None]:
    figures = {}
    for key, ((phase, name), *_) in ROUND_FIGURES.items():
        figures[key] = (result.get(phase) or {}).get(name)
    return figures


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def write(
    out: Path,
    meta: dict[str, Any],
    rounds: list[dict[str, Any]],
    once: dict[str, dict],
    figures: dict[str, Any] | None = None,
) -> None:
    """Write the results; `figures` are the benchmarks run beside (bench/beside.py): their listed keys
    go into latest.json, all of it into latest-details.json."""
    clients = [c for c in CLIENTS if any(c in r["clients"] for r in rounds) or c in once]
    per_round = [{c: round_figures(r["clients"].get(c, {})) for c in clients} for r in rounds]
    medians = {c: {key: median([r[c][key] for r in per_round]) for key in ROUND_FIGURES} for c in clients}
    ratios = _ratios(per_round, clients)
    once_figures = {c: _once_figures(c, once.get(c, {})) for c in clients}
    by_action = _by_action(rounds, clients)
    proxy = proxy_check(rounds)

    latest = {
        "date": meta["date"],
        "clients": {c: {**medians[c], **once_figures[c]} for c in ["offload", *PEERS] if c in clients},
        # offload's drain / the hand loop's, within each round, median.
        "drain_vs_limit": (ratios.get("offload", {}).get("drain_msgs_per_s") or {}).get(LIMIT),
        **beside.latest_keys(figures or {}),
    }
    (out / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    details = {**meta, "per_round": per_round, "ratios": ratios, "by_action": by_action, "rounds": rounds}
    details["once"] = once
    details["proxy_check"] = proxy
    details["figures"] = figures or {}
    (out / "latest-details.json").write_text(json.dumps(details, indent=1, default=str) + "\n")
    goals = _goals(ratios, medians, once_figures) + _beside_goals(figures or {})
    meta = {**meta, "rounds_raw": rounds}
    (out / "latest.md").write_text(
        _markdown(meta, clients, medians, ratios, once_figures, once, by_action, goals, proxy)
        + "\n".join(_beside_section(figures or {}))
    )
    _chart(out / "latest.png", clients, medians, by_action, meta)


def proxy_check(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A's drain through its counting proxy and straight to the server, run one after the other."""
    per_round = []
    for r in rounds:
        proxied = ((r["clients"].get(LIMIT) or {}).get("bulk") or {}).get("drain_msgs_per_s")
        direct = ((r.get("limit_direct") or {}).get("bulk") or {}).get("drain_msgs_per_s")
        ratio = proxied / direct if proxied and direct else None
        per_round.append({"proxied": proxied, "direct": direct, "proxied_vs_direct": ratio})
    return {
        "per_round": per_round,
        "proxied_vs_direct": median([r["proxied_vs_direct"] for r in per_round]),
    }


def _ratios(per_round: list[dict[str, dict]], clients: list[str]) -> dict[str, dict[str, dict]]:
    """Medians over rounds of each round's ratios: {client: {figure: {"A": x, "offload": y}}}."""
    ratios: dict[str, dict[str, dict]] = {}
    for client in clients:
        ratios[client] = {}
        for key in ROUND_FIGURES:
            entry = {}
            for base in ("boto3_batched", "offload", "dramatiq_sqs", "celery"):
                values = []
                for figures in per_round:
                    mine, theirs = figures.get(client, {}).get(key), figures.get(base, {}).get(key)
                    if mine is not None and theirs:
                        values.append(mine / theirs)
                entry[base] = median(values)
            ratios[client][key] = entry
    return ratios


def _once_figures(client: str, results: dict[str, dict]) -> dict[str, Any]:
    idle = results.get("idle", {})
    recovery = results.get("recovery", {})
    retry = results.get("retry", {})
    kept = None
    if retry and "error" not in retry:
        kept = retry.get("ran_again_after_s") is not None or retry.get("in_sqs_after_15s", 0) > 0
    return {
        "idle_requests_per_min": idle.get("requests_per_min_per_queue"),
        "recovery_s": recovery.get("recovery_s"),
        "long_retry_kept": kept,
    }


def _by_action(rounds: list[dict[str, Any]], clients: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Median requests per message by action: {client: {phase: {action: req/msg}}}."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for client in clients:
        result[client] = {}
        for phase, count_key in (("bulk", "messages"), ("steady1", "sent"), ("steady8", "sent")):
            samples: dict[str, list[float]] = {}
            for r in rounds:
                data = r["clients"].get(client, {}).get(phase)
                if not data or not data.get(count_key):
                    continue
                for action, n in data["requests"].items():
                    if not action.startswith("("):
                        samples.setdefault(action, []).append(n / data[count_key])
            result[client][phase] = {a: statistics.median(v) for a, v in sorted(samples.items())}
    return result


def _goals(ratios: dict, medians: dict, once: dict) -> list[tuple[str, str, bool | None]]:
    """The issue's goals for offload: (goal, measured, met)."""
    if "offload" not in medians:
        return []
    o, r = medians["offload"], ratios["offload"]
    goals: list[tuple[str, str, bool | None]] = []

    def add(goal: str, value: float | None, limit: float, higher: bool, unit: str = "") -> None:
        met = None if value is None else (value >= limit if higher else value <= limit)
        goals.append((goal, f"{_fmt(value)}{unit}", met))

    add("bulk requests/msg <= 0.32", o["bulk_requests_per_msg"], 0.32, False)
    for key, name, limit in (("enqueue_msgs_per_s", "enqueue", 0.8), ("drain_msgs_per_s", "drain", 1.25)):
        add(f"bulk {name} >= {limit}x A", r[key]["boto3_batched"], limit, True, "x")
        add(f"bulk {name} >= 5x dramatiq_sqs", r[key]["dramatiq_sqs"], 5, True, "x")
        add(f"bulk {name} >= 5x Celery", r[key]["celery"], 5, True, "x")
    add("steady x1 requests/msg <= 1.25", o["steady_requests_per_msg"], 1.25, False)
    add("steady x1 latency p50 <= dramatiq_sqs's", r["latency_p50_ms"]["dramatiq_sqs"], 1, False, "x")
    add("steady x1 end-to-end >= 2x dramatiq_sqs", r["e2e_msgs_per_s"]["dramatiq_sqs"], 2, True, "x")
    add("steady x1 end-to-end >= 1.5x Celery", r["e2e_msgs_per_s"]["celery"], 1.5, True, "x")
    add("idle <= 3 requests/min/queue", once["offload"]["idle_requests_per_min"], 3, False)
    add("recovery within 2 leases (120 s)", once["offload"]["recovery_s"], 120, False, " s")
    kept = once["offload"]["long_retry_kept"]
    goals.append(("retry with a backoff > 15 min kept", _fmt(kept), kept))
    return goals


def _beside_goals(figures: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    if "site" not in figures.get("beside", {}):
        return []
    idle, loaded = figures.get("site_upload_p99_ms_idle"), figures.get("site_upload_p99_ms_loaded")
    ratio = loaded / idle if idle and loaded is not None else None
    measured = f"{_fmt(loaded)} / {_fmt(idle)} ms = {_fmt(ratio)}x"
    return [("site: upload p99 loaded <= 3x idle", measured, None if ratio is None else ratio <= 3)]


def _beside_section(figures: dict[str, Any]) -> list[str]:
    """The Lambda worker's and the site's figures, as measured after the rounds."""
    ran = figures.get("beside", {})
    if not ran:
        return []
    lines = ["## Beside the broker: the Lambda worker and the site", ""]
    lines += ["| figure | value |", "|---|---|"]
    for key in beside.latest_keys(figures):
        lines.append(f"| `{key}` | {_fmt(figures.get(key))} |")
    lines.append("")
    for name, outcome in ran.items():
        state = f"failed: {outcome['error']}" if "error" in outcome else "ran"
        lines.append(f"- {name}: {state} ({outcome['wall_s'] / 60:.1f} min).")
    lines += ["", 'How each is measured: bench/README.md ("Lambda" and "The site under load").', ""]
    return lines


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "kept" if value else "lost"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def _markdown(
    meta: dict,
    clients: list[str],
    medians: dict,
    ratios: dict,
    once_figures: dict,
    once: dict,
    by_action: dict,
    goals: list,
    proxy: dict,
) -> str:
    lines = [
        "# offload benchmark: latest run",
        "",
        f"Date {meta['date']}, {meta['settings']['rounds']} rounds, `make bench` wall time "
        f"{meta['wall_s'] / 60:.1f} min. Medians over the rounds; ratios are medians of the ratios taken "
        "within each round (same server, same minute), which is what to read on a shared machine.",
        "",
    ]
    lines += _medians_section(clients, medians)
    lines += _ratios_sections(clients, ratios)
    lines += _actions_section(clients, by_action)
    lines += _once_section(clients, once_figures, once)
    lines += _goals_section(goals)
    lines += ["", "## Counting cross-check", ""]
    lines += _cross_check(meta.get("rounds_raw", []))
    lines += _proxy_section(proxy)
    lines += _machine_section(meta)
    return "\n".join(lines)


def _table_head(clients: list[str]) -> list[str]:
    return ["| figure | " + " | ".join(LABELS[c] for c in clients) + " |", "|---|" + "---|" * len(clients)]


def _medians_section(clients: list[str], medians: dict) -> list[str]:
    lines = ["## Figures 1-4, medians", "", *_table_head(clients)]
    for key, (_, label, unit, _) in ROUND_FIGURES.items():
        row = [f"{label} ({unit})"] + [_fmt(medians[c][key]) for c in clients]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _ratios_sections(clients: list[str], ratios: dict) -> list[str]:
    lines = [
        "",
        "## offload against each of the others (offload / other, per round, median)",
        "",
        "Above 1 is better for offload on msgs/s; below 1 is better for requests/msg and latency.",
        "",
        "| figure | vs A: boto3 hand-batched | vs C: dramatiq_sqs | vs D: Celery |",
        "|---|---|---|---|",
    ]
    if "offload" in ratios:
        for key, (_, label, _, _) in ROUND_FIGURES.items():
            row = [label] + [_fmt(ratios["offload"][key][base]) + "x" for base in PEERS]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Each client against A (client / A, per round, median)", "", *_table_head(clients)]
    for key, (_, label, _, _) in ROUND_FIGURES.items():
        row = [label] + [_fmt(ratios[c][key]["boto3_batched"]) + "x" for c in clients]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _actions_section(clients: list[str], by_action: dict) -> list[str]:
    lines = ["", "## Requests per message by action (medians)", ""]
    lines += ["| client | bulk | steady x1 | steady x8 |", "|---|---|---|---|"]
    for c in clients:
        cells = []
        for phase in ("bulk", "steady1", "steady8"):
            actions = by_action[c].get(phase, {})
            cells.append(", ".join(f"{a} {v:.3f}" for a, v in actions.items()) or "n/a")
        lines.append(f"| {LABELS[c]} | " + " | ".join(cells) + " |")
    return lines


def _once_section(clients: list[str], once_figures: dict, once: dict) -> list[str]:
    lines = [
        "",
        "## Figures 5-7, once per client",
        "",
        "| client | 5. idle requests/min/queue | 6. recovery after SIGKILL | visibility "
        "| 7. retry > 15 min |",
        "|---|---|---|---|---|",
    ]
    for c in clients:
        lines.append(
            f"| {LABELS[c]} | " + " | ".join(_once_cells(c, once_figures[c], once.get(c, {}))) + " |"
        )
    return lines


def _goals_section(goals: list) -> list[str]:
    if not goals:
        return []
    lines = ["", "## The issue's goals for offload", "", "| goal | measured | met |", "|---|---|---|"]
    for goal, measured, met in goals:
        lines.append(f"| {goal} | {measured} | {'n/a' if met is None else 'yes' if met else '**no**'} |")
    return lines


def _machine_section(meta: dict) -> list[str]:
    lines = ["", "## Machine and versions", ""]
    if meta.get("broker_changed_during_run"):
        lines += ["**brokers/ changed while this run was going on: rounds may mix broker versions.**", ""]
    m = meta["machine"]
    lines.append(
        f"{m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, {m['os']}, Python {m['python']}; "
        f"load average before {m['load_before']}, after {m['load_after']} (other work shares this machine)."
    )
    lines.append("")
    lines.append(", ".join(f"{name} {version}" for name, version in meta["versions"].items()) + ".")
    s = meta["settings"]
    lines += [
        "",
        f"Settings: bulk {s['bulk_messages']:,} no-op messages; steady producers run {s['steady_s']} s each; "
        f"idle {s['idle_s']:.0f} s; {s['worker_threads']} worker threads. Raw data: latest-details.json.",
        "",
    ]
    return lines


def _cross_check(rounds: list[dict[str, Any]]) -> list[str]:
    """The proxy's tally of offload's bulk figure against offload's own `broker.stats`."""
    lines = []
    for number, r in enumerate(rounds, 1):
        bulk = r["clients"].get("offload", {}).get("bulk") or {}
        own = bulk.get("own_count")
        if own is None:
            continue
        proxied = {a: n for a, n in bulk["requests"].items() if not a.startswith("(")}
        verdict = "identical" if proxied == own else f"differ: proxy {proxied}, broker.stats {own}"
        lines.append(f"- Round {number}, offload bulk: proxy and broker.stats {verdict}.")
    return lines or ["- No cross-check available."]


def _proxy_section(proxy: dict) -> list[str]:
    """Whether the counting proxy holds the fastest client back: A's drain with and without it."""
    lines = [
        "",
        "## Is the proxy holding A back?",
        "",
        "A's bulk figure runs twice in each round, one straight after the other: through its counting "
        "proxy (as every client) and straight to the server.",
        "",
        "| round | A drain through the proxy (msgs/s) | A drain direct (msgs/s) | proxied / direct |",
        "|---|---|---|---|",
    ]
    for number, r in enumerate(proxy["per_round"], 1):
        lines.append(
            f"| {number} | {_fmt(r['proxied'])} | {_fmt(r['direct'])} | {_fmt(r['proxied_vs_direct'])}x |"
        )
    lines += ["", f"Median proxied / direct: {_fmt(proxy['proxied_vs_direct'])}x."]
    return lines


def _once_cells(client: str, figures: dict, raw: dict) -> list[str]:
    idle = _fmt(figures["idle_requests_per_min"])
    if "idle" in raw and raw["idle"].get("requests"):
        actions = {a: n for a, n in raw["idle"]["requests"].items() if not a.startswith("(")}
        idle += " (" + ", ".join(f"{a} {n}" for a, n in actions.items()) + ")" if actions else ""
    recovery = raw.get("recovery")
    if not recovery or "held" not in recovery:
        recovery_cell = "n/a" if not recovery else "failed to measure"
    else:
        held = f"held {recovery['held']} of {recovery['sent']}"
        if figures["recovery_s"] is not None:
            recovery_cell = (
                f"{held}; all back in {figures['recovery_s']:.0f} s (first {recovery['first_back_s']:.0f} s)"
            )
        else:
            recovery_cell = (
                f"{held}; {recovery.get('back_count', 0)} of them back within {recovery['give_up_s']:.0f} s: "
                "gave up"
            )
    retry = raw.get("retry")
    if not retry:
        retry_cell = "n/a"
    elif "error" in retry and "in_sqs_after_15s" not in retry:
        retry_cell = "failed to measure"
    else:
        held = {q: {k: v for k, v in c.items() if v} for q, c in retry.get("queues_after_15s", {}).items()}
        held = {q: c for q, c in held.items() if c}
        ran = retry.get("ran_again_after_s")
        waited = retry.get("waited_s")
        retry_cell = _fmt(figures["long_retry_kept"]) + f": after 15 s the queues hold {held or 'nothing'}"
        if ran is not None:
            retry_cell += f"; ran again {ran / 60:.1f} min after the failure"
        elif waited:
            retry_cell += f"; not run again within {waited / 60:.1f} min"
    return [idle, recovery_cell, VISIBILITY[client] if recovery else "n/a", retry_cell]


def _chart(path: Path, clients: list[str], medians: dict, by_action: dict, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "boto3_batched": "#9e9e9e",
        "offload": "#1f77b4",
        "dramatiq_sqs": "#ff7f0e",
        "celery": "#2ca02c",
    }
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    panels = [
        (
            "1. bulk: enqueue / drain (msgs/s)",
            ["enqueue_msgs_per_s", "drain_msgs_per_s"],
            ["enqueue", "drain"],
        ),
        ("2. steady x1: end-to-end (msgs/s)", ["e2e_msgs_per_s"], ["msgs/s"]),
        (
            "2. steady x1: latency send -> start (ms, log)",
            ["latency_p50_ms", "latency_p99_ms"],
            ["p50", "p99"],
        ),
        ("3. steady x8: end-to-end (msgs/s)", ["steady8_msgs_per_s"], ["msgs/s"]),
        (
            "4. SQS requests per message",
            ["bulk_requests_per_msg", "steady_requests_per_msg", "steady8_requests_per_msg"],
            ["bulk", "steady x1", "steady x8"],
        ),
    ]
    for ax, (title, keys, groups) in zip(axes.flat, panels, strict=False):
        width = 0.8 / len(clients)
        for n, client in enumerate(clients):
            values = [medians[client][key] or 0 for key in keys]
            xs = [g + (n - (len(clients) - 1) / 2) * width for g in range(len(keys))]
            bars = ax.bar(xs, values, width, label=LABELS[client], color=colors[client])
            ax.bar_label(bars, labels=[_fmt(v) for v in values], fontsize=7, rotation=90, padding=2)
        ax.set_xticks(range(len(keys)), groups)
        ax.set_title(title, fontsize=10)
        if "log" in title:
            ax.set_yscale("log")
        ax.margins(y=0.25)
    # The last panel: requests per message by action, stacked, for bulk and steady x1.
    ax = axes.flat[5]
    actions = sorted({a for c in clients for p in ("bulk", "steady1") for a in by_action[c].get(p, {})})
    labels = [f"{c.split('_')[0]}\n{p}" for c in clients for p in ("bulk", "steady1")]
    bottoms = [0.0] * len(labels)
    cmap = plt.get_cmap("tab20")
    for k, action in enumerate(actions):
        values = [by_action[c].get(p, {}).get(action, 0.0) for c in clients for p in ("bulk", "steady1")]
        ax.bar(range(len(labels)), values, bottom=bottoms, label=action, color=cmap(k % 20))
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(0, max([*bottoms, 0.1]) * 1.12)
    ax.set_title("4. requests per message by action (bulk and steady x1)", fontsize=10)
    ax.legend(fontsize=6)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(
        f"offload vs peers on LocalStack SQS, {meta['date']} "
        f"(medians of {meta['settings']['rounds']} rounds; {meta['machine']['cpus']} CPUs, shared)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    """Re-render latest.md, latest.json and latest.png from latest-details.json (after a report change)."""
    out = Path(__file__).resolve().parent / "results"
    details = json.loads((out / "latest-details.json").read_text())
    meta = {key: details[key] for key in ("date", "wall_s", "settings", "machine", "versions")}
    meta["broker_changed_during_run"] = details.get("broker_changed_during_run", False)
    write(out, meta, details["rounds"], details["once"], details.get("figures"))


if __name__ == "__main__":
    main()
