#!/usr/bin/env python3
"""The benchmark report: bench/results/latest.md from what bench/measure.py recorded in latest.json.

The targets come from the JSON (measure.py records them with the numbers); each is reported as met, not met or
not measured, next to ratios against the baselines of the same run. Nothing here measures anything, so the text
of the report can change without running the benchmark again:

    .tools/venv/bin/python bench/report.py                           # bench/results/latest.json -> latest.md
    .tools/venv/bin/python bench/report.py results.json --md out.md --quiet
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from measure import KCHC_PACKAGE, RESULTS


def evaluate(res: dict[str, Any], limits: dict[str, float]) -> dict[str, Any]:
    """Ratios against the baselines, and each target met (True), missed (False) or not measured (None)."""
    lat = res.get("latency", {})
    mem = res.get("memory", {}).get("after_load", {})

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    ratios: dict[str, dict[str, Any]] = {}
    for mode, per in lat.items():
        base = per.get("connect_baseline", {})
        ratios[mode] = {k: {"p99_vs_connect": ratio(v.get("p99_ms"), base.get("p99_ms")),
                            "p50_vs_connect": ratio(v.get("p50_ms"), base.get("p50_ms"))}
                        for k, v in per.items() if k != "connect_baseline"}
    waitress = mem.get("waitress", {})
    mem_ratios = {k: {"rss_vs_waitress": ratio(v.get("rss_mb"), waitress.get("rss_mb")),
                      "pss_vs_waitress": ratio(v.get("pss_mb"), waitress.get("pss_mb"))}
                  for k, v in mem.items() if k != "waitress"}
    per_poll = [c["connect_health"]["per_poll"] for c in res.get("rest_calls", [])]
    gauges = [c["connect_health"]["gauge_rest_calls_last_poll"] for c in res.get("rest_calls", [])]
    apply_u = res.get("apply_unchanged", {})
    helm = res.get("helm", {}).get("results", [])
    small = [h for h in helm if h.get("shape", "filestream") == "filestream"]
    large = [h for h in helm if h.get("shape") == "debezium"]

    def p99(mode: str, key: str) -> float | None:
        value: float | None = lat.get(mode, {}).get(key, {}).get("p99_ms")
        return value

    livez = limits["livez_p99_ms"]
    targets = {
        "livez_p99_le_5ms_16_clients_flood": _met(p99("flood", "waitress"), livez),
        "livez_p99_le_5ms_16_clients_paced": _met(p99("paced", "waitress"), livez),
        "livez_p99_le_5ms_connect_stopped_flood": _met(p99("flood", "waitress_connect_stopped"), livez),
        "livez_p99_le_5ms_connect_stopped_paced": _met(p99("paced", "waitress_connect_stopped"), livez),
        "sidecar_rss_le_40mb": _met(waitress.get("rss_mb"), limits["rss_mb"]),
        "rest_calls_per_poll_constant": (len(set(per_poll)) == 1 and len(set(gauges)) == 1) if per_poll else None,
        "apply_unchanged_0_writes": (apply_u.get("max_writes") == 0 and set(apply_u.get("exits", [])) == {0})
        if apply_u else None,
        "apply_unchanged_under_5s": _met(apply_u.get("median_wall_s"), limits["apply_unchanged_s"]),
        "helm_template_100_under_1s": all(h["median_s"] < limits["helm_template_s"] for h in small) if small else None,
        "helm_template_1000_debezium_under_2s": all(
            h["median_s"] < limits.get("helm_template_1000_debezium_s", 2.0) for h in large) if large else None,
    }
    return {"latency_ratios": ratios, "memory_ratios": mem_ratios, "targets_met": targets}


def _met(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def cost_per_pod(res: dict[str, Any], scale: dict[str, Any] | None, limits: dict[str, float]) -> list[str]:
    """Issue 22's targets table: each figure beside kafka-connect-healthcheck's and Connect's own `GET /` of the
    same run (measure.py's stack; scale.py's stand-in for 3,000 connectors)."""
    mem = res.get("memory", {}).get("after_load", {})
    rest = res.get("memory", {}).get("at_rest", {}).get("waitress", {})
    ours = rest.get("rss_once_mb", rest.get("rss_mb"))
    theirs = mem.get("kchc", {}).get("rss_mb")
    loaded = mem.get("waitress", {}).get("rss_mb")
    page = res.get("memory", {}).get("after_a_page", {}).get("waitress", {}).get("rss_mb")
    flood = res.get("latency", {}).get("flood", {})
    base_p99 = flood.get("connect_baseline", {}).get("p99_ms")
    kchc_p99 = flood.get("kchc", {}).get("p99_ms")
    big = (scale or {}).get("sizes", {}).get("3000", {}).get("sidecar", {})
    iso = big.get("isolation", {})
    alone, with_readers = iso.get("probe_port_alone", {}), iso.get("probe_port_with_readers", {})
    main_alone, main_loaded = iso.get("main_port_alone", {}), iso.get("main_port_with_readers", {})
    st = res.get("start", {})
    scale_limits = (scale or {}).get("targets", {})
    cpu_limit = scale_limits.get("cpu_ms_per_poll_3000", 20.0)
    p99_limit = scale_limits.get("livez_p99_ms_with_readers", 50.0)
    ratio_limit = scale_limits.get("livez_p99_ratio_with_readers", 3.0)
    ratio = (round(with_readers["p99_ms"] / alone["p99_ms"], 2)
             if with_readers.get("p99_ms") and alone.get("p99_ms") else None)
    loaded0 = iso.get("probe_port_with_readers_nice0", {})
    ratio0 = (round(loaded0["p99_ms"] / alone["p99_ms"], 2) if loaded0.get("p99_ms") and alone.get("p99_ms")
              else None)
    cpu = big.get("cpu_ms_per_poll")
    churn = big.get("changing_answer", {}).get("cpu_ms_per_poll")
    ping, verdict = st.get("ping_max_s"), st.get("first_verdict_max_s")
    kchc_rss = f" ({KCHC_PACKAGE}: {fmt(theirs, ' MB', 1)})"

    def both(a: bool | None, b: bool | None) -> bool | None:
        return None if a is None or b is None else a and b

    rows = [
        ("RSS at rest (serving probes and /metrics, 100 connectors) ≤ kafka-connect-healthcheck's, same run",
         f"{fmt(ours, ' MB', 1)}, each page once over the main and the probe process{kchc_rss}; "
         "the sidecar also serving the benchmark's /status JSON reads and the "
         f"probe load {fmt(loaded, ' MB', 1)}, {fmt(page, ' MB', 1)} after a /status HTML page",
         None if ours is None or theirs is None else ours <= theirs),
        (f"/livez p99 ≤ {p99_limit:g} ms with {iso.get('readers', 24)} clients reading /metrics and /status (JSON, "
         "HTML), 3,000 connectors, probe port",
         f"{fmt(with_readers.get('p99_ms'), ' ms')} (alone {fmt(alone.get('p99_ms'), ' ms')}; main port "
         f"{fmt(main_loaded.get('p99_ms'), ' ms')}, alone {fmt(main_alone.get('p99_ms'), ' ms')})",
         _met(with_readers.get("p99_ms"), p99_limit)),
        (f"... and within {ratio_limit:g}x of /livez p99 with no readers", f"{fmt(ratio, 'x')}, medians of "
         f"{len(iso.get('rounds', [])) or 1} rounds, the readers at nice {iso.get('readers_nice', 0)} (they stand "
         f"for clients on other machines); at nice 0, the sidecar's, {fmt(ratio0, 'x')} "
         f"({fmt(loaded0.get('p99_ms'), ' ms')})", _met(ratio, ratio_limit)),
        (f"CPU per poll at 3,000 connectors ≤ {cpu_limit:g} ms",
         f"{fmt(cpu, ' ms', 1)} (answer unchanged between polls); {fmt(churn, ' ms', 1)} with the answer changing at "
         "every poll", both(_met(cpu, cpu_limit), _met(churn, cpu_limit))),
        (f"start: exec → /ping ≤ {limits.get('start_ping_s', 0.5):g} s, first verdict within one poll interval "
         f"({fmt(st.get('poll_interval_s'), ' s', 1)}), read-only root filesystem",
         f"/ping {fmt(st.get('ping_median_s'), ' s', 3)} median, {fmt(ping, ' s', 3)} max (the process's own CPU "
         f"by then {fmt(st.get('cpu_at_ping_median_s'), ' s', 2)}: the rest is waiting for a core); first verdict "
         f"{fmt(st.get('first_verdict_median_s'), ' s', 3)} median, {fmt(verdict, ' s', 3)} max; "
         f"{len(st.get('runs', []))} starts, root {'read-only' if st.get('read_only_root') else 'WRITABLE'}",
         None if not st else both(both(_met(ping, limits.get("start_ping_s", 0.5)),
                                       _met(verdict, st.get("poll_interval_s", 1.0))),
                                  bool(st.get("read_only_root")))),
    ]
    lines = ["## Cost per pod (issue 22)", "",
             f"Beside, in the same run: Connect's own `GET /` p99 {fmt(base_p99, ' ms')} and {KCHC_PACKAGE}'s `/` "
             f"p99 {fmt(kchc_p99, ' ms')} (16 clients, flood, 100 connectors; tables below); {KCHC_PACKAGE}'s RSS "
             f"{fmt(theirs, ' MB', 1)}.", "", "| target | measured | |", "|---|---|---|"]
    lines += [f"| {what} | {value} | {yes(met)} |" for what, value, met in rows]
    return lines


# ------------------------------------------------------------------------------------------------ reporting

def fmt(v: Any, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def yes(v: bool | None) -> str:
    return "n/a" if v is None else ("**met**" if v else "**NOT met**")


def markdown(report: dict[str, Any], scale: dict[str, Any] | None = None) -> str:
    res, m = report["results"], report["machine"]
    ev = evaluate(res, report["targets"])
    v = report["versions"]
    prm = report["params"]
    lat = res.get("latency", {})
    t = ev["targets_met"]
    mem = res.get("memory", {}).get("after_load", {})
    au = res.get("apply_unchanged", {})
    helm = res.get("helm", {}).get("results", [])
    conns = prm["connections"]

    def p99(mode: str, key: str) -> str:
        return fmt(lat.get(mode, {}).get(key, {}).get("p99_ms"), " ms")

    calls = res.get("rest_calls", [])
    per_poll = (", ".join(f"{c['connect_health']['per_poll']:g}" for c in calls) + " with "
                + ", ".join(str(c["connectors"]) for c in calls) + " connectors") if calls else "-"
    setup = (f"Setup: one KRaft broker and one Connect distributed worker on 127.0.0.1 (the launcher, ci/launcher), "
             f"{prm['connectors']} FileStream source connectors declared with `connect-health apply`, sidecars "
             f"polling every {prm['poll_interval']:g} s. Load: wrk, {conns} connections, one wrk thread, "
             f"{prm['rounds']} interleaved rounds of {prm['duration']:g} s per server and mode; the tables show the "
             "median over rounds (max: over all). *flood*: each client sends its next request as soon as the answer "
             f"arrives (latency then includes queueing behind the other {conns - 1} clients).")
    if prm["think_ms"]:
        setup += (f" *paced*: each client waits {prm['think_ms']:g} ms between requests (at most "
                  f"{1000 * conns / prm['think_ms']:.0f} requests/s in all).")
    lines = [
        "# connect-health benchmark results",
        "",
        f"Recorded {report['date']} by `make bench` (`bench/measure.py`, {report['total_s']:.0f} s). Machine: "
        f"{m['nproc']} × {m['cpu_model']}, {m['mem_total_gib']} GiB, {m['os']}, kernel {m['kernel']}; load average "
        f"{report['loadavg_start'][0]} at the start, {report['loadavg_end'][0]} at the end. Timings on this shared "
        "machine are noisy: compare rows of the same run, not runs.",
        "",
        f"Versions: connect-health {v['connect-health']} (Flask {v['flask']}, waitress {v['waitress']}, gunicorn "
        f"{v['gunicorn']}), {KCHC_PACKAGE} {v[KCHC_PACKAGE]}, Kafka {v['kafka']} ({v['java']}), Python {v['python']},"
        f" {v['wrk']}, helm {v['helm3']} / {v['helm4']}.",
        "",
        setup,
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| /livez p99 ≤ 5 ms, {conns} clients, flood | {p99('flood', 'waitress')} |"
        f" {yes(t['livez_p99_le_5ms_16_clients_flood'])} |",
        f"| /livez p99 ≤ 5 ms, {conns} clients, paced | {p99('paced', 'waitress')} |"
        f" {yes(t['livez_p99_le_5ms_16_clients_paced'])} |",
        f"| /livez p99 ≤ 5 ms while the Connect JVM is SIGSTOPped, flood | {p99('flood', 'waitress_connect_stopped')} |"
        f" {yes(t['livez_p99_le_5ms_connect_stopped_flood'])} |",
        f"| /livez p99 ≤ 5 ms while the Connect JVM is SIGSTOPped, paced | {p99('paced', 'waitress_connect_stopped')} |"
        f" {yes(t['livez_p99_le_5ms_connect_stopped_paced'])} |",
        f"| sidecar RSS ≤ 40 MB (waitress, after load) | {fmt(mem.get('waitress', {}).get('rss_mb'), ' MB', 1)} |"
        f" {yes(t['sidecar_rss_le_40mb'])} |",
        f"| REST calls per poll independent of the connector count | {per_poll} |"
        f" {yes(t['rest_calls_per_poll_constant'])} |",
        f"| apply of {au.get('connectors')} unchanged connectors sends 0 writes | {au.get('max_writes')} |"
        f" {yes(t['apply_unchanged_0_writes'])} |",
        f"| apply of {au.get('connectors')} unchanged connectors < 5 s | {fmt(au.get('median_wall_s'), ' s')} |"
        f" {yes(t['apply_unchanged_under_5s'])} |",
        "| helm template with 100 declared connectors < 1 s | "
        + (", ".join(f"{h['helm']} {h['median_s'] * 1000:.0f} ms" for h in helm
                     if h.get("shape", "filestream") == "filestream") or "not measured")
        + f" | {yes(t['helm_template_100_under_1s'])} |",
        "| helm template with 1,000 Debezium-sized connectors (sharded ConfigMaps) < 2 s | "
        + (", ".join(f"{h['helm']} {h['median_s'] * 1000:.0f} ms" for h in helm if h.get("shape") == "debezium")
           or "not measured")
        + f" | {yes(t.get('helm_template_1000_debezium_under_2s'))} |",
    ]
    lines += ["", *cost_per_pod(res, scale, report["targets"])]
    names = {"connect_baseline": "Connect `GET /` (baseline)", "waitress": "connect-health `/livez`, waitress",
             "gunicorn": "connect-health `/livez`, gunicorn -w 1 --threads 8",
             "kchc": f"{KCHC_PACKAGE} {v[KCHC_PACKAGE]} `/`",
             "waitress_connect_stopped": "connect-health `/livez`, waitress, Connect SIGSTOPped"}
    for mode, per in lat.items():
        lines += [
            "",
            f"## Probe latency, {mode} ({prm['connectors']} connectors, {conns} concurrent clients)",
            "",
            "| server | requests | req/s | p50 | p90 | p99 | max | non-2xx / timeouts | p99 vs Connect `GET /` |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, label in names.items():
            s = per.get(key, {})
            if not s:
                continue
            if "error" in s:
                lines.append(f"| {label} | error: {s['error']} | | | | | | | |")
                continue
            r = ev["latency_ratios"].get(mode, {}).get(key, {}).get("p99_vs_connect")
            lines.append(f"| {label} | {s['requests']} | {fmt(s['rps'], '', 0)} | {fmt(s['p50_ms'], ' ms')} | "
                         f"{fmt(s['p90_ms'], ' ms')} | {fmt(s['p99_ms'], ' ms')} | {fmt(s['max_ms'], ' ms', 1)} | "
                         f"{s['non_2xx_3xx']} / {s['timeouts']} | "
                         f"{'1 (baseline)' if key == 'connect_baseline' else fmt(r, '×')} |")
    sp = res.get("single_probe", {})
    cs = res.get("connect_stopped", {})
    kp = cs.get("kchc_probe", {})
    lines += [
        "",
        f"One probe at a time (as a kubelet probes; connection setup included), {prm['connectors']} connectors: "
        f"connect-health median {fmt(sp.get('waitress', {}).get('median_ms'), ' ms')}, {KCHC_PACKAGE} median "
        f"{fmt(sp.get('kchc', {}).get('median_ms'), ' ms')} (max {fmt(sp.get('kchc', {}).get('max_ms'), ' ms')}).",
        "",
        f"Connect JVM stopped (SIGSTOP, {cs.get('seconds')} s): connect-health kept answering from its cached view "
        f"(/livez {cs.get('livez_status_at_end')}, /readyz {cs.get('readyz_status_at_end')} at the end; /livez turns "
        f"503 only after --unresponsive-after); {KCHC_PACKAGE}: {kp.get('error') or kp.get('status')} (it has no "
        "timeout on its calls to Connect).",
        "",
        f"{KCHC_PACKAGE} serves one request at a time (http.server.HTTPServer, listen backlog 5) and makes 1 + N "
        "REST calls per probe. wrk starts the clock when a request is written, so time spent waiting to be accepted "
        "is not in its numbers; it answers HTTP/1.0 and closes each connection, which wrk also counts as read "
        "errors (the answers are complete).",
        "",
        "## Memory (after the load runs)",
        "",
        "| server | processes | RSS (sum) | PSS (sum) | RSS vs waitress | idle RSS |",
        "|---|---|---|---|---|---|",
    ]
    idle = res.get("memory", {}).get("idle", {})
    floor = res.get("memory", {}).get("floor", {})
    mnames = {"waitress": "connect-health, waitress (`serve`)", "gunicorn": "connect-health, gunicorn -w 1 --threads 8",
              "kchc": f"{KCHC_PACKAGE} {v[KCHC_PACKAGE]}"}
    for key, label in mnames.items():
        s = mem.get(key, {})
        r = ev["memory_ratios"].get(key, {}).get("rss_vs_waitress")
        lines.append(f"| {label} | {s.get('processes')} | {fmt(s.get('rss_mb'), ' MB', 1)} | "
                     f"{fmt(s.get('pss_mb'), ' MB', 1)} | {'1' if key == 'waitress' else fmt(r, '×')} | "
                     f"{fmt(idle.get(key, {}).get('rss_mb'), ' MB', 1)} |")
    lines += [
        "",
        "RSS sums count pages a forked gunicorn worker shares with its master twice; PSS splits them (and also "
        "shared libraries with every other process of the host, which a sidecar container does not share). "
        f"MB = MiB. Floor measured in the same run: a bare Python {fmt(floor.get('python_bare'), ' MB', 1)}, a "
        "Python that only imports what `serve` runs to answer probes and /metrics (waitress, msgspec, the standard "
        f"library's http.client; Flask and Jinja only once a /status page is asked for) "
        f"{fmt(floor.get('imports_only'), ' MB', 1)} when imported as a library (OpenSSL included), "
        + (f"{fmt(floor['imports_as_command'], ' MB', 1)} as the `connect-health` command imports them (entry.py: "
           "no OpenSSL until a call needs TLS)." if "imports_as_command" in floor else
           "less as the `connect-health` command imports them (entry.py: no OpenSSL until a call needs TLS; not "
           "measured in this run)."),
        "",
        "## REST calls to Connect",
        "",
        f"| connectors | connect-health GETs per poll (request log) | `rest_calls_last_poll` | {KCHC_PACKAGE} calls "
        "per probe | its probe time |",
        "|---|---|---|---|---|",
    ]
    for c in res.get("rest_calls", []):
        lines.append(f"| {c['connectors']} | {c['connect_health']['per_poll']:g} "
                     f"({c['connect_health']['requests']} in {c['connect_health']['polls']} polls) | "
                     f"{fmt(c['connect_health']['gauge_rest_calls_last_poll'], '', 0)} | "
                     f"{c['kchc_per_probe']['requests']} | {c['kchc_per_probe']['probe_ms']} ms |")
    if res.get("rest_calls"):
        lines += ["", "connect-health's calls in each poll: "
                  + "; ".join(f"`{p}`" for p in res["rest_calls"][-1]["connect_health"]["paths"]) + "."]
    ac = res.get("apply_create", {})
    lines += [
        "",
        "## connect-health apply",
        "",
        f"- growing the declarations to {ac.get('connectors')} connectors (creates the missing ones): "
        f"{fmt(ac.get('wall_s'), ' s')}, {ac.get('writes')} writes, {ac.get('runs')} run(s): {ac.get('last_summary')}",
        f"- the unchanged file applied again, {len(au.get('runs', []))} times: median "
        f"{fmt(au.get('median_wall_s'), ' s')} (whole process, Python start included); writes per run "
        f"{[r['writes'] for r in au.get('runs', [])]}; exit codes {au.get('exits')}",
        "",
        "## helm template (bench/chart_template_bench.py)",
        "",
    ]
    if helm:
        for h in helm:
            lines.append(f"- {h['helm']}: {h['connectors']} declared {h.get('shape', 'filestream')} connectors, median "
                         f"{h['median_s'] * 1000:.0f} ms "
                         f"(min {h['min_s'] * 1000:.0f}, max {h['max_s'] * 1000:.0f}, {h['runs']} runs)")
    else:
        lines.append(f"- not measured: {res.get('helm', {}).get('error', 'skipped (--skip-helm)')}")
    gm, wm = mem.get("gunicorn", {}), mem.get("waitress", {})
    lines += [
        "",
        "## WSGI server",
        "",
        f"waitress (`connect-health serve`): {fmt(wm.get('rss_mb'), ' MB', 1)} RSS in {wm.get('processes')} process, "
        f"/livez p99 {p99('flood', 'waitress')} flood, {p99('paced', 'waitress')} paced. gunicorn -w 1 --threads 8: "
        f"{fmt(gm.get('rss_mb'), ' MB', 1)} RSS ({fmt(gm.get('pss_mb'), ' MB', 1)} PSS) in {gm.get('processes')} "
        f"processes, /livez p99 {p99('flood', 'gunicorn')} flood, {p99('paced', 'gunicorn')} paced.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("results", type=Path, nargs="?", default=RESULTS / "latest.json",
                    help="what measure.py wrote (default bench/results/latest.json)")
    ap.add_argument("--md", type=Path, default=None, help="where to write the report (default: RESULTS with .md)")
    ap.add_argument("--quiet", action="store_true", help="do not print the report")
    args = ap.parse_args(argv)
    try:
        report = json.loads(args.results.read_text())
    except (OSError, ValueError) as e:
        print(f"report: cannot read {args.results}: {e}", file=sys.stderr)
        return 2
    md_path = args.md or args.results.with_suffix(".md")
    scale_results = RESULTS / "scale.json"  # bench/scale.py's section (issue 12), when it has run
    scale = json.loads(scale_results.read_text()) if args.md is None and scale_results.exists() else None
    text = markdown(report, scale)
    if scale is not None:
        from scale import markdown as scale_markdown

        text += "\n" + scale_markdown(scale)
    md_path.write_text(text)
    if not args.quiet:
        print(md_path.read_text())
    print(f"report: wrote {md_path}")
    for name, met in evaluate(report["results"], report["targets"])["targets_met"].items():
        print(f"report: target {name}: {'met' if met else 'n/a' if met is None else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
