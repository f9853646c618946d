"""The printed table: every figure of the benchmark with its target, from ``results.json``'s structure."""

from __future__ import annotations

from typing import Any

TARGET_RSS_MIB = 300
TARGET_CORES = 0.25
TARGET_REQUESTS_PER_TICK = 2
TARGET_ROLLBACK_RATIO = 1.2


def _f(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    for run in results.get("scale", []):
        n, iv = run["objects"], run["analysis_interval_seconds"]
        p = f"scale {n}"
        rows.append(
            (f"{p}: seconds to start the cluster (and install)", _f(run.get("seconds_to_start_cluster"), 1), "")
        )
        rows.append((f"{p}: seconds until all Promoted", _f(run.get("seconds_to_all_promoted"), 1), ""))
        rows.append((f"{p}: seconds until all at weight 10", _f(run.get("seconds_to_all_at_canary_step"), 1), ""))
        rows.append((f"{p}: seconds until all analysed once", _f(run.get("seconds_to_all_analysed"), 1), ""))
        rows.append((f"{p}: Pods Running (Promoted / canary)", f"{run.get('pods_running_promoted')} / "
                     f"{run.get('pods_running_canary')}", ""))  # fmt: skip
        rows.append((f"{p}: operator peak RSS (MiB)", _f(run.get("peak_rss_mib"), 1), f"< {TARGET_RSS_MIB}"))
        for state, w in (run.get("windows") or {}).items():
            q = f"{p} {state}"
            rows.append((f"{q}: operator RSS at the window's end (MiB)", _f(w.get("rss_mib"), 1), ""))
            rows.append((f"{q}: operator CPU s per {iv:g} s interval", _f(w["cpu_seconds_per_interval"]), ""))
            rows.append((f"{q}: operator cores", _f(w["cores"], 3), f"< {TARGET_CORES}"))
            rows.append((f"{q}: operator CPU ms per tick", _f(w.get("cpu_ms_per_tick")), ""))
            rows.append((f"{q}: share of that CPU in the kernel", _f(w.get("system_share")), ""))
            rows.append((f"{q}: share of that CPU in the event loop", _f(w.get("main_thread_share")), ""))
            rows.append((f"{q}: ticks per object per interval", _f(w["ticks_per_object_per_interval"]), ""))
            rows.append((f"{q}: API reads per object per tick", _f(w["api_reads_per_object_per_tick"]), ""))
            rows.append((f"{q}: API writes per object per tick", _f(w["api_writes_per_object_per_tick"]), ""))
            total = w["api_reads_per_object_per_tick"] + w["api_writes_per_object_per_tick"]
            rows.append((f"{q}: API requests per object per tick", _f(total), f"<= {TARGET_REQUESTS_PER_TICK}"))
            rows.append(
                (f"{q}: API requests per object per interval", _f(w["api_requests_per_object_per_interval"]), "")
            )
            rows.append(
                (f"{q}: Prometheus queries per object per tick", _f(w["prometheus_queries_per_object_per_tick"]), "")
            )
            rows.append(
                (
                    f"{q}: Prometheus queries per object per interval",
                    _f(w["prometheus_queries_per_object_per_interval"]),
                    "",
                )
            )
            audited = (w.get("api_by_verb") or {}).get("patch modeldeployments/status", 0)
            metric = w.get("apiserver_status_patches")
            rows.append((f"{q}: status writes, audit log / API server metric", f"{audited} / {_f(metric, 0)}", ""))
            failed = sum((w.get("api_failed") or {}).values())
            rows.append((f"{q}: operator requests answered with an error", str(failed), ""))
            for name, cores in (w.get("cluster_cores") or {}).items():
                rows.append((f"{q}: {name} cores", _f(cores, 3), ""))
            rows.append((f"{q}: machine busy (cores of {results.get('machine', {}).get('cpus')})",
                         _f(w.get("machine_cores_busy"), 2), ""))  # fmt: skip
    rb = results.get("rollback")
    if rb:
        iv = rb["analysis_interval_seconds"]
        rows.append(
            (
                f"rollback: max latency / interval ({iv:g} s, {rb['measured']} objects)",
                _f(rb["max_ratio"]),
                f"<= {TARGET_ROLLBACK_RATIO}",
            )
        )
        rows.append(("rollback: mean latency / interval", _f(rb["mean_ratio"]), ""))
    a = results.get("audit")
    if a:
        us = a["apiserver_cpu_us_per_request"]
        rows.append(("audit: API server CPU us per request, not audited", _f(us["not_audited"], 0), ""))
        rows.append(("audit: API server CPU us per audited request, added", _f(a["audit_cpu_us_per_request"], 0), ""))
    d = results.get("decide")
    if d:
        rows.append((f"decide/s, analysis due ({d['spec']})", _f(d["analysis_tick_per_second"], 0), ""))
        rows.append((f"decide/s, nothing due ({d['spec']})", _f(d["quiet_tick_per_second"], 0), ""))
    width = max(len(r[0]) for r in rows) if rows else 10
    lines = [f"{'figure':<{width}}  {'value':>10}  target", f"{'-' * width}  {'-' * 10}  ------"]
    lines += [f"{name:<{width}}  {value:>10}  {target}" for name, value, target in rows]
    return "\n".join(lines)
