"""Targets from the issue, checked against a run's results, and the short stdout table."""

from __future__ import annotations

from typing import Any


def _get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def evaluate_targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: name, measured value, limit, met (True/False/None when not measured)."""
    t: list[dict[str, Any]] = []

    def add(name: str, value: Any, limit: str, ok: bool | None) -> None:
        t.append({"target": name, "value": value, "limit": limit, "met": ok})

    rps = _get(r, "intake", "postgresql", "ratio_rps_vs_baseline")
    add("intake throughput on PostgreSQL vs bare", rps, ">= 0.25", None if rps is None else rps >= 0.25)
    p99 = _get(r, "intake", "postgresql", "ratio_p99_vs_baseline")
    add("intake p99 on PostgreSQL vs bare", p99, "<= 4x", None if p99 is None else p99 <= 4)
    lite = _get(r, "intake", "sqlite", "ratio_rps_vs_baseline")
    add("SQLite intake vs bare (issue 19)", lite, ">= 0.15", None if lite is None else lite >= 0.15)
    b = _get(r, "breach", "ratio_p99_vs_broker")
    add("breach-to-ticket p99 vs broker round trip", b, "<= 4x (issue 19)", None if b is None else b <= 4)
    bulk = _get(r, "bulk", "ratio_vs_copy")
    add("bulk ingest vs COPY", bulk, ">= 0.30", None if bulk is None else bulk >= 0.30)
    for backend in ("postgresql", "sqlite"):
        q = _get(r, "query", backend, "worst_filtered_ratio")
        add(f"query at large vs small size ({backend}, worst filtered shape)", q, "<= 2x", None if q is None else q <= 2)
    hist = _get(r, "history", "ratio_vs_copy")
    add("311 history import vs COPY (PostgreSQL)", hist, ">= 0.30", None if hist is None else hist >= 0.30)
    hl = _get(r, "history", "with_layers", "ratio_layers_vs_plain")
    add("311 history import with 4 layers vs without (PostgreSQL)", hl, ">= 0.50", None if hl is None else hl >= 0.50)
    e = _get(r, "evalscale", "ratio_median")
    add("evaluation with many vs few indicators", e, "<= 1.5x", None if e is None else e <= 1.5)
    for page, words in (("dashboard", "a department's dashboard"), ("report", "a department's report")):
        v = _get(r, "render", f"{page}_ratio")
        add(f"{words} with 5,000 vs 100 indicators registered", v, "<= 3x", None if v is None else v <= 3)
    v = _get(r, "render", "board_per_tile_ratio")
    add("the whole board's time per tile, 5,000 vs 100 tiles", v, "<= 3x", None if v is None else v <= 3)
    geo = _get(r, "areas", "ratio_rps_with_layers")
    add("intake throughput with 200 areas in 4 layers vs none (PostgreSQL)", geo, ">= 0.95",
        None if geo is None else geo >= 0.95)
    idle = _get(r, "memory", "idle_max_mb")
    add("each service idle resident memory (largest process)", idle, "< 150 MB", None if idle is None else idle < 150)
    _pipeline_targets(r, add)
    return t


def _pipeline_targets(r: dict[str, Any], add: Any) -> None:
    """Issue 19: the pipeline keeps up with the front door."""
    e2e = _get(r, "pipeline", "postgresql", "ratio_end_to_end_vs_intake")
    add("end-to-end sustained throughput vs intake alone (PostgreSQL)", e2e, ">= 0.8", None if e2e is None else e2e >= 0.8)
    lag = _get(r, "pipeline", "postgresql", "lag", "p99_ms")
    lag_s = None if lag is None else round(lag / 1000, 2)
    add("derived-indicator lag p99 during the burst (PostgreSQL, s)", lag_s, "<= 2 s", None if lag_s is None else lag_s <= 2)
    for backend in ("postgresql", "sqlite"):
        rev = _get(r, "pipeline", backend, "revision_rows_per_request")
        add(f"revision rows per 311 request ({backend})", rev, "<= 0.1", None if rev is None else rev <= 0.1)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def table(report: dict[str, Any]) -> str:
    rows = _rows(report)
    lines = [f"CityStat benchmarks, {report['started']} ({report['elapsed_s']} s, {report['machine'].get('cpus')} CPUs)", ""]
    w = [max(len(x[i]) for x in rows) if rows else 0 for i in range(4)]
    lines.append(f"{'benchmark':<{w[0]}}  {'figure':<{w[1]}}  {'detail':<{w[2]}}  ratio")
    for row in rows:
        lines.append(f"{row[0]:<{w[0]}}  {row[1]:<{w[1]}}  {row[2]:<{w[2]}}  {row[3]}")
    lines += ["", "targets:"]
    for t in report.get("targets", []):
        mark = {True: "MET", False: "NOT MET", None: "not measured"}[t["met"]]
        lines.append(f"  [{mark}] {t['target']}: {_fmt(t['value'])} (target {t['limit']})")
    if report.get("errors"):
        lines += ["", "errors: " + ", ".join(report["errors"])]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    """The same figures as Markdown tables, for docs/performance.md."""
    out = [f"Run `{report['started']}` ({report['elapsed_s']} s).", "",
           "| benchmark | figure | detail | ratio |", "|---|---|---|---|"]
    out += [f"| {a.strip()} | {b} | {c} | {d} |" for a, b, c, d in _rows(report)]
    out += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in report.get("targets", []):
        out.append(f"| {t['target']} | {_fmt(t['value'])} | {t['limit']} | "
                   f"{ {True: 'yes', False: '**no**', None: 'not measured'}[t['met']] } |")
    return "\n".join(out)


def _rows(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    r = report["results"]
    rows: list[tuple[str, str, str, str]] = []
    it = r.get("intake") or {}
    if "baseline" in it:
        b = it["baseline"]
        rows.append(("intake bare baseline", f"{_fmt(b['rps'])} req/s",
                     f"p50/95/99 {b['p50_ms']}/{b['p95_ms']}/{b['p99_ms']} ms (wrk used {b['wrk_cpu_cores']} cores)", "1.0"))
        c = it.get("wrk_ceiling_get") or {}
        if c:
            rows.append(("  load generator check: GET /ping", f"{_fmt(c['rps'])} req/s",
                         f"wrk used {c['wrk_cpu_cores']} cores, server {c['server_cpu_cores']}", ""))
        nv = it.get("naive_reference_postgresql")
        if nv:
            rows.append(("  naive insert+outbox (PG)", f"{_fmt(nv['ok_rps'])} req/s",
                         f"p50/95/99 {nv['p50_ms']}/{nv['p95_ms']}/{nv['p99_ms']} ms",
                         f"{_fmt(nv['ratio_rps_vs_baseline'])} (p99 {_fmt(nv['ratio_p99_vs_baseline'])}x)"))
        for backend in ("postgresql", "sqlite"):
            s = it.get(backend)
            if s and "rps" in s:
                detail = f"p50/95/99 {s['p50_ms']}/{s['p95_ms']}/{s['p99_ms']} ms"
                if s.get("rounds"):  # the median round; its own bare run; every round's ratio
                    detail += (f"; bare in that round {_fmt(s['baseline']['rps'])} req/s; rounds "
                               + "/".join(_fmt(x["ratio_rps_vs_baseline"]) for x in s["rounds"]))
                rows.append((f"intake {backend}", f"{_fmt(s['ok_rps'])} req/s", detail,
                             f"{_fmt(s['ratio_rps_vs_baseline'])} (p99 {_fmt(s['ratio_p99_vs_baseline'])}x)"))
                gcm = s.get("group_commit")
                if gcm:
                    rows.append(("  group commit", f"{gcm['mean_batch']} requests per transaction",
                                 f"{gcm['mean_write_ms']} ms per write ({gcm['batches']:,} batches)", ""))
    for backend, q in (r.get("query") or {}).items():
        if isinstance(q, dict) and "shapes" in q:
            for shape, v in q["shapes"].items():
                rows.append((f"query {backend} {shape}", f"{_fmt(v['small']['p50_ms'])} -> {_fmt(v['large']['p50_ms'])} ms",
                             f"{q['small_rows']:,} -> {q['large_rows']:,} rows", f"{_fmt(v['ratio_p50'])}x"))
    bk = r.get("bulk") or {}
    if "api_rows_per_s" in bk:
        rows.append(("bulk ingest API", f"{_fmt(bk['api_rows_per_s'])} rows/s", f"COPY {_fmt(bk['copy_rows_per_s'])} rows/s",
                     _fmt(bk["ratio_vs_copy"])))
        one = bk.get("one_process") or {}
        if "api_rows_per_s" in one:
            rows.append(("  with one api process", f"{_fmt(one['api_rows_per_s'])} rows/s",
                         f"{bk.get('web_workers', '?')} processes: {_fmt(bk['api_rows_per_s'])} rows/s", _fmt(one.get("ratio_vs_copy"))))
    br = r.get("breach") or {}
    if "ticket" in br:
        rows.append(("breach -> ticket", f"p50/95/99 {br['ticket']['p50_ms']}/{br['ticket']['p95_ms']}/{br['ticket']['p99_ms']} ms",
                     f"broker RTT p50/99 {br['broker_rtt']['p50_ms']}/{br['broker_rtt']['p99_ms']} ms", f"{_fmt(br['ratio_p99_vs_broker'])}x (p99)"))
        st = br.get("stages") or {}
        if st:
            a, z = st.get("outbox_to_published") or {}, st.get("published_to_ticket_opened") or {}
            w, v = st.get("posted_to_outbox_row") or {}, st.get("ticket_opened_to_seen") or {}
            rows.append(("  stages p50/p99", f"POST->outbox row {w.get('p50_ms')}/{w.get('p99_ms')} ms; "
                         f"relay {a.get('p50_ms')}/{a.get('p99_ms')} ms",
                         f"bus+consumer {z.get('p50_ms')}/{z.get('p99_ms')} ms; "
                         f"opened->seen {v.get('p50_ms')}/{v.get('p99_ms')} ms", ""))
    ev = r.get("evalscale") or {}
    if "ratio_median" in ev:
        rows.append(("evaluation scaling", f"{_fmt(ev['small']['p50_ms'])} -> {_fmt(ev['large']['p50_ms'])} ms",
                     f"{ev['small_indicators']:,} -> {ev['large_indicators']:,} indicators", f"{_fmt(ev['ratio_median'])}x"))
    rn = r.get("render") or {}
    if "dashboard_ratio" in rn:
        for page in ("dashboard", "report"):
            rows.append((f"render department {page}", f"{_fmt(rn['small'][page]['p50_ms'])} -> "
                         f"{_fmt(rn['large'][page]['p50_ms'])} ms",
                         f"{rn['small_indicators']:,} -> {rn['large_indicators']:,} indicators registered",
                         f"{_fmt(rn[f'{page}_ratio'])}x"))
        rows.append(("render whole board", f"{_fmt(rn['small']['board']['p50_ms'])} -> "
                     f"{_fmt(rn['large']['board']['p50_ms'])} ms",
                     f"{rn['small']['board']['tiles']:,} -> {rn['large']['board']['tiles']:,} tiles; ms per tile "
                     f"{rn['board_ms_per_tile']['small']} -> {rn['board_ms_per_tile']['large']}",
                     f"{_fmt(rn['board_per_tile_ratio'])}x per tile"))
    mem = r.get("memory") or {}
    def _mb(d: dict[str, Any] | None) -> str:
        return " / ".join(f"{k} {v}" for k, v in (d or {}).items())

    for svc, v in (mem.get("services") or {}).items():
        rows.append((f"memory {svc} (MB)", f"idle {_mb(v.get('idle_mb'))}", f"under intake load {_mb(v.get('load_peak_mb'))}", ""))
    if mem.get("idle_cpu_cores"):
        total = sum(mem["idle_cpu_cores"].values())
        top = max(mem["idle_cpu_cores"].items(), key=lambda kv: kv[1])
        rows.append(("idle CPU, all 8 processes", f"{total:.3f} cores", f"largest {top[0]} {top[1]}", ""))
    for backend in ("postgresql", "sqlite"):
        s = it.get(backend) or {}
        if s.get("rss_idle_mb"):
            rows.append((f"memory intake311 bench {backend} (MB)", f"idle {_mb(s['rss_idle_mb'])}",
                         f"under load {_mb(s.get('rss_load_peak_mb'))}", ""))
    rows += _pipeline_rows(r.get("pipeline") or {})
    return rows


def _pipeline_rows(pl: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for backend in ("postgresql", "sqlite"):
        p = pl.get(backend) or {}
        if "intake_alone" not in p:
            continue
        lag = p.get("lag") or {}
        rows.append((f"pipeline {backend}", f"{_fmt(p.get('end_to_end_rps'))} req/s end to end",
                     f"intake alone {_fmt(p['intake_alone']['ok_rps'])} req/s, {p['accepted']:,} accepted, "
                     f"drain {_fmt(p.get('drain_s'))} s", _fmt(p.get("ratio_end_to_end_vs_intake"))))
        rows.append((f"  derived lag {backend}", f"p50/99 {lag.get('p50_ms')}/{lag.get('p99_ms')} ms",
                     f"{_fmt(p.get('revision_rows_per_request'))} revision rows and "
                     f"{_fmt((p.get('bytes_per_request') or {}).get('all'))} bytes per request", ""))
    return rows


def main() -> None:
    """``python -m bench.report bench/results/<file>.json [--markdown]``: print a saved run again."""
    import json
    import sys

    report = json.loads(open(sys.argv[1]).read())
    report["targets"] = evaluate_targets(report["results"])
    print(markdown(report) if "--markdown" in sys.argv else table(report))


if __name__ == "__main__":
    main()
