"""Reports for bench/compare: console summary, markdown, and hand-written SVG
charts (a radar chart and bar charts; no libraries). Input is the result
dictionary that bench/compare writes as JSON."""
import json
import math
import os
from xml.sax.saxutils import escape

COLORS = {"sluice": "#d62728", "nginx": "#2ca02c", "haproxy": "#1f77b4", "gohttp": "#17becf",
          "fasthttp": "#9467bd", "quicgo": "#ff7f0e", "portkey": "#8c564b", "direct": "#7f7f7f"}


# ---------------------------------------------------------------------------
def _f(v, fmt="{:.1f}", none="–"):
    if v is None:
        return none
    try:
        return fmt.format(v)
    except (TypeError, ValueError):
        return str(v)


def _mib(kb):
    return None if kb is None else kb / 1024


def _ok(e):
    return isinstance(e, dict) and e.get("status") == "ok"


def _scen(t, name):
    return (t.get("scenarios") or {}).get(name) or {}


def _gens(t):
    return sorted({e.get("generator") for e in (t.get("scenarios") or {}).values() if e.get("generator")})


def summary_rows(res):
    rows = []
    for t in res["targets"]:
        chat, st = _scen(t, "chat"), _scen(t, "stream")
        lat = chat.get("latency_ms") or {}
        row = {
            "target": t["label"],
            "name": t["name"],
            "status": t["status"],
            "qps": chat.get("rps") if _ok(chat) else None,
            "mean": lat.get("mean") if _ok(chat) else None,
            "p50": lat.get("p50") if _ok(chat) else None,
            "p99": lat.get("p99") if _ok(chat) else None,
            "cpu_req": chat.get("cpu_us_per_req") if _ok(chat) else None,
            "ttft_over": (st.get("ttft_overhead_ms") or {}).get("p50") if _ok(st) else None,
            "ttft_p50": (st.get("ttft_ms") or {}).get("p50") if _ok(st) else None,
            "gap_p99": (st.get("gap_ms") or {}).get("p99") if _ok(st) else None,
            "fidelity": st.get("fidelity") if _ok(st) else None,
            "cpu_event": st.get("cpu_us_per_event") if _ok(st) else None,
            "sse": st.get("delivery", "–") if _ok(st) and st.get("ttft_ms") else "–",
            "idle": _mib(t.get("idle_rss_kb")),
            "peak": _mib(t.get("peak_rss_kb")),
            "errors": sum((e.get("errors") or 0) for e in (t.get("scenarios") or {}).values() if _ok(e)),
            "gens": ", ".join(_gens(t)),
            "foreign": _foreign(t),
        }
        rows.append(row)
    return rows


SUMMARY_COLS = [
    ("target", "gateway", None), ("qps", "chat req/s", "{:.0f}"), ("mean", "mean ms", "{:.2f}"),
    ("p99", "p99 ms", "{:.2f}"), ("cpu_req", "CPU µs/req", "{:.0f}"), ("ttft_over", "TTFT +ms p50", "{:+.2f}"),
    ("gap_p99", "gap p99 ms", "{:.2f}"), ("fidelity", "fidelity", "{:.2f}"), ("sse", "SSE", None), ("cpu_event", "CPU µs/event", "{:.1f}"),
    ("idle", "idle MiB", "{:.1f}"), ("peak", "peak MiB", "{:.1f}"), ("errors", "errors", "{:d}"),
    ("foreign", "other load %", None),
]


def _foreign(t):
    """'gateway core / load core' median share used by other processes, e.g. '12/30'."""
    es = [e for e in (t.get("scenarios") or {}).values() if _ok(e)]
    g = _median([e.get("gw_core_foreign_pct") for e in es]) if t["name"] != "direct" else None
    lc = _median([e.get("load_core_foreign_pct") for e in es])
    return f"{_f(g, '{:.0f}')}/{_f(lc, '{:.0f}')}"


def _median(v):
    v = sorted(x for x in v if x is not None)
    return v[len(v) // 2] if v else None


def console_summary(res):
    rows = summary_rows(res)
    out = [f"bench/compare --{res['profile']} ({res['started_utc']}, {res['elapsed_s']:.0f} s): "
           f"{res['machine']['nproc']} x {res['machine']['cpu_model']}, kernel {res['machine']['kernel']}",
           "chat = small non-streaming chat; TTFT/gap/fidelity/CPU per event = streaming chat "
           f"({_stream_desc(res)}); RSS = whole process tree", ""]
    widths = []
    for key, head, fmt in SUMMARY_COLS:
        vals = [head] + [(_f(r[key], fmt) if fmt else r[key]) if r["status"] == "ok" else "" for r in rows]
        widths.append(max(len(v) for v in vals))
    out.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, ((_, h, _), w) in
                         enumerate(zip(SUMMARY_COLS, widths))))
    for r in rows:
        if r["status"] != "ok":
            out.append(f"{r['target'].ljust(widths[0])}  {r['status']}")
            continue
        cells = []
        for i, ((key, _, fmt), w) in enumerate(zip(SUMMARY_COLS, widths)):
            v = r[key] if not fmt else _f(r[key], fmt)
            cells.append(v.ljust(w) if i == 0 else v.rjust(w))
        out.append("  ".join(cells) + f"   [{r['gens']}]")
    sweep = sweep_table(res, plain=True)
    if sweep:
        out += ["", sweep]
    lean = lean_table(res, plain=True)
    if lean:
        out += ["", lean]
    notes = findings(res)
    if notes:
        out += ["", "findings:"] + [f"  - {n}" for n in notes]
    return "\n".join(out)


def _itl(res, name):
    return next((s["itl"] for s in res["scenarios"] if s["name"] == name), "?")


def _stream_desc(res):
    s = next((s for s in res["scenarios"] if s["name"] == "stream"), None)
    return f"{s['tokens']} tokens every {s['itl']} ms, {s['conc']} streams" if s else "not run"


def _plain_table(title, head, rows):
    """A titled text table: first column left-aligned, the others right-aligned."""
    w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = [title, "  ".join(h.ljust(w[i]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head))]
    for r in rows:
        lines.append("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
    return "\n".join(lines)


def sweep_table(res, plain=False):
    levels = [s for s in res["scenarios"] if s["group"] == "sweep"]
    if not levels:
        return ""
    head = ["gateway"] + [f"{s['conc']} stream{'s' if s['conc'] != 1 else ''}" for s in levels]
    rows = []
    for t in res["targets"]:
        if t["status"] != "ok":
            continue
        cells = [t["label"]]
        for s in levels:
            e = _scen(t, s["name"])
            if not _ok(e):
                cells.append(e.get("status", "–"))
                continue
            gap = (e.get("gap_ms") or {}).get("p99")
            c = f"{_f(gap, '{:.1f}')} ms"
            if e.get("delivery") in ("buffered", "coalesced"):
                c = e["delivery"] if e["delivery"] == "buffered" else c + " coalesced"
            if e.get("fidelity") is not None:
                c += f" / {e['fidelity']:.2f}"
            if e.get("errors"):
                c += f" / {e['errors']} err"
            cells.append(c)
        rows.append(cells)
    title = "concurrency sweep: p99 inter-event gap / chunk fidelity" + \
        (f" (tokens every {levels[0]['itl']} ms)" if levels else "")
    return _plain_table(title, head, rows) if plain else _md_table(head, rows)


def lean_table(res, plain=False):
    """The issue-13 figures side by side: CPU per small request and per streamed request (wrk), CPU per
    event, memory per stream and p99 added inter-event gap under many paced streams (sluice-bench)."""
    names = {s["name"] for s in res["scenarios"]}
    paced = [s for s in res["scenarios"] if s["group"] == "paced"]
    if not paced and not names & {"chat_wrk", "stream_wrk"}:
        return ""
    direct = next((t for t in res["targets"] if t["name"] == "direct"), None)
    head = ["gateway"]
    if "chat_wrk" in names:
        head.append("CPU µs/chat req (wrk)")
    if "stream_wrk" in names:
        head.append("CPU µs/streamed req (wrk)")
    for s in paced:
        head += [f"{s['conc']} paced: CPU µs/event", f"{s['conc']} paced: KB/stream",
                 f"{s['conc']} paced: p99 added gap ms"]
    rows = []
    for t in res["targets"]:
        if t["status"] != "ok" or t["name"] == "direct" or t["proto"] == "h3":
            continue
        cells = [t["label"]]
        for n in ("chat_wrk", "stream_wrk"):
            if n in names:
                e = _scen(t, n)
                cells.append(_f(e.get("cpu_us_per_req"), "{:.1f}") if _ok(e) else e.get("status", "–"))
        for s in paced:
            e = _scen(t, s["name"])
            if not _ok(e):
                cells += [e.get("status", "–"), "", ""]
                continue
            gap = (e.get("gap_ms") or {}).get("p99")
            d = _scen(direct, s["name"]) if direct else {}
            dgap = (d.get("gap_ms") or {}).get("p99") if _ok(d) else None
            added = gap - dgap if gap is not None and dgap is not None else None
            cells += [_f(e.get("cpu_us_per_event"), "{:.2f}"), _f(e.get("mem_per_stream_kb"), "{:.1f}"),
                      _f(added, "{:+.2f}")]
        rows.append(cells)
    title = "lean core: CPU per request/event and memory per stream (lower is better)"
    return _plain_table(title, head, rows) if plain else _md_table(head, rows)


def findings(res):
    notes = []
    for t in res["targets"]:
        if t["status"] != "ok":
            notes.append(f"{t['label']}: {t['status']}")
            continue
        st = _scen(t, "stream")
        if _ok(st) and st.get("buffered"):
            af = st.get("arrival_fidelity")
            notes.append(f"{t['label']} delivers SSE streams buffered ("
                         + (f"arrival fidelity {af:.2f}; " if af is not None else "")
                         + f"TTFT p50 {_f((st.get('ttft_ms') or {}).get('p50'), '{:.1f}')} ms ≈ the whole "
                         "generation): a real limitation, not a harness artefact")
        if _ok(st) and st.get("delivery") == "coalesced":
            notes.append(f"{t['label']} coalesces SSE events in the streaming scenario (gap p50 "
                         f"{_f((st.get('gap_ms') or {}).get('p50'), '{:.2f}')} ms while the mock writes a token every "
                         f"{_itl(res, 'stream')} ms): clients see tokens in bursts")
        for name, e in (t.get("scenarios") or {}).items():
            if not _ok(e):
                notes.append(f"{t['label']} / {name}: {e.get('status')}: {e.get('reason', '')[:200]}")
            elif e.get("errors"):
                notes.append(f"{t['label']} / {name}: {e['errors']} errors"
                             + (f" (e.g. {e['error_sample']})" if e.get("error_sample") else ""))
            elif e.get("huge") is not None and not e["huge"].get("requests"):
                notes.append(f"{t['label']} / {name}: not one huge ({e['huge'].get('prompt_tokens')}-token) request "
                             "completed during the measured interval")
            elif e.get("incomplete_streams"):
                notes.append(f"{t['label']} / {name}: {e['incomplete_streams']} streams missing events")
    direct = next((t for t in res["targets"] if t["name"] == "direct"), None)
    dchat = _scen(direct, "chat") if direct else {}
    if _ok(dchat):
        near = [t["label"] for t in res["targets"] if t["name"] != "direct" and t["status"] == "ok"
                and _ok(_scen(t, "chat")) and _scen(t, "chat")["rps"] >= 0.9 * dchat["rps"]]
        if near:
            notes.append(f"chat: {', '.join(near)} reach >= 90% of direct's {dchat['rps']:.0f} req/s, so their QPS "
                         "is capped by the load core (mock + generator), not by the gateway: compare CPU µs/req")
    noisy = []
    for t in res["targets"]:
        for name, e in (t.get("scenarios") or {}).items():
            if not _ok(e):
                continue
            g = e.get("gw_core_foreign_pct") if t["name"] != "direct" else None
            lc = e.get("load_core_foreign_pct")
            if (g or 0) >= 25 or (lc or 0) >= 25:
                noisy.append(f"{t['name']}/{name}")
    if noisy:
        notes.append(f"other processes on this (shared) machine used >= 25% of the gateway or the load core "
                     f"during {len(noisy)} of the measured intervals ({', '.join(noisy[:12])}"
                     f"{', ...' if len(noisy) > 12 else ''}): see the 'other load %' column; such figures are "
                     "noisy, compare ratios from quiet intervals")
    return notes


# ---------------------------------------------------------------------------
def _md_table(head, rows, align=None):
    align = align or (["---"] + ["---:"] * (len(head) - 1))
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return "\n".join(out)


def scenario_table(res, sc):
    stream = sc["kind"] != "plain"
    head = ["gateway", "generator", "req/s", "mean ms", "p50 ms", "p99 ms", "errors", "CPU µs/req", "core %"]
    if stream:
        head += ["TTFT p50 ms", "TTFT p99 ms", "TTFT +ms p50", "gap p50 ms", "gap p99 ms", "fidelity", "SSE",
                 "CPU µs/event"]
    if sc["kind"] == "hol":
        head += ["huge req", "huge p50 ms"]
    head += ["peak RSS MiB", "other load %"]
    rows = []
    for t in res["targets"]:
        if t["status"] != "ok":
            continue
        e = _scen(t, sc["name"])
        if not _ok(e):
            rows.append([t["label"], e.get("generator", "–"), f"{e.get('status', 'missing')}: "
                         f"{(e.get('reason') or '')[:120]}"] + [""] * (len(head) - 3))
            continue
        lat = e.get("latency_ms") or {}
        r = [t["label"], e["generator"], _f(e["rps"]), _f(lat.get("mean"), "{:.2f}"), _f(lat.get("p50"), "{:.2f}"),
             _f(lat.get("p99"), "{:.2f}"), e["errors"], _f(e.get("cpu_us_per_req"), "{:.0f}"),
             _f(e.get("gw_core_util_pct"), "{:.0f}")]
        if stream:
            tt, gp = e.get("ttft_ms") or {}, e.get("gap_ms") or {}
            r += [_f(tt.get("p50"), "{:.2f}"), _f(tt.get("p99"), "{:.2f}"),
                  _f((e.get("ttft_overhead_ms") or {}).get("p50"), "{:+.2f}"),
                  _f(gp.get("p50"), "{:.2f}"), _f(gp.get("p99"), "{:.2f}"), _f(e.get("fidelity"), "{:.2f}"),
                  e.get("delivery", "–"), _f(e.get("cpu_us_per_event"), "{:.2f}")]
        if sc["kind"] == "hol":
            h = e.get("huge") or {}
            r += [h.get("requests", "–"), _f((h.get("latency_ms") or {}).get("p50"), "{:.1f}")]
        r += [_f(_mib(e.get("rss_peak_kb"))),
              f"{_f(e.get('gw_core_foreign_pct') if t['name'] != 'direct' else None, '{:.0f}')}/"
              f"{_f(e.get('load_core_foreign_pct'), '{:.0f}')}"]
        rows.append(r)
    return _md_table(head, rows, ["---", "---"] + ["---:"] * (len(head) - 2))


def markdown(res, img_prefix):
    m = res["machine"]
    L = [f"# Sluice vs. peers — `bench/compare --{res['profile']}`", "",
         f"Run {res['started_utc']} in {res['elapsed_s']:.0f} s on {m['nproc']} × {m['cpu_model']}, "
         f"{_f(_mib(m.get('mem_kb')), '{:.0f}')} MiB RAM, {m.get('distro')}, kernel {m['kernel']}.", "",
         f"Command: `{res['command']}`", "",
         "Setup: " + res["setup"]["note"] + f"; {res['setup']['duration_s']:g} s measured per scenario after "
         f"{res['setup']['warmup_s']:g} s warm-up. All traffic on loopback; the mock answers every model.", "",
         "Load generators: " + "; ".join(f"{k}: {v}" for k, v in res["generators"].items()) +
         ". Each row names the generator that produced it; only rows from the same generator are directly "
         "comparable (the quic-go row is HTTP/3 through peer-loadgen; its TTFT overhead is against direct "
         "measured by peer-loadgen over HTTP/1.1).", "",
         "## Summary", ""]
    rows = summary_rows(res)
    head = [h for _, h, _ in SUMMARY_COLS] + ["generators"]
    tr = []
    for r in rows:
        if r["status"] != "ok":
            tr.append([r["target"], r["status"]] + [""] * (len(head) - 2))
            continue
        tr.append([r["target"]] + [_f(r[k], f) if f else r[k] for k, _, f in SUMMARY_COLS[1:]] + [r["gens"]])
    L += [_md_table(head, tr, ["---"] + ["---:"] * (len(head) - 2) + ["---"]), "",
          "chat = " + next((s["title"] for s in res["scenarios"] if s["name"] == "chat"), "not run") +
          "; streaming columns = " + next((s["title"] for s in res["scenarios"] if s["name"] == "stream"), "not run") +
          ". TTFT +ms = gateway TTFT p50 minus direct TTFT p50 (same generator). Gap = time between "
          "consecutive content events at the client (the mock writes one token every itl ms). Fidelity = "
          "content events received / expected (1.00 = none lost). SSE = how events arrived: buffered = the "
          "first event came with (nearly) the whole response and the rest bunched with it; coalesced = token "
          "writes merged on the way (median gap < itl/4, or peer-loadgen saw fewer than half arrive "
          "separately), typical of an overloaded gateway; live otherwise. "
          "CPU = user+system time of the gateway's process tree over the measured interval (core % in the "
          "scenario tables: that time as a share of the interval; a gateway below ~90 % while slower than "
          "direct is limited by something other than its CPU). Other load % = "
          "median share of the gateway core / the load core used by processes outside the benchmark during the "
          "measured intervals (for direct the gateway core is unused, so only the load core counts); high "
          "values mean noisy figures. Idle MiB = RSS "
          "after start-up; peak MiB = VmHWM of the process tree over the whole run (includes the largest "
          "sweep level).", "",
          f"![radar: QPS, mean latency, P99, memory]({img_prefix}-radar.svg)", "",
          f"![TTFT overhead]({img_prefix}-ttft.svg)", "",
          f"![CPU per request]({img_prefix}-cpu.svg)", ""]
    notes = findings(res)
    if notes:
        L += ["## Findings and peers not run", ""] + [f"- {n}" for n in notes] + [""]
    L += ["## Scenarios", ""]
    for sc in res["scenarios"]:
        L += [f"### {sc['name']}: {sc['title']}", "", scenario_table(res, sc), ""]
    sw = sweep_table(res)
    if sw:
        L += ["### Concurrency sweep at a glance (p99 inter-event gap / fidelity)", "", sw, ""]
    lean = lean_table(res)
    if lean:
        L += ["### Lean core at a glance", "",
              "CPU per request from wrk runs (small chat; a streamed chat of 20 SSE events, unpaced); under "
              "paced streams (22 events 50 ms apart, sluice-bench): CPU per event, memory per concurrent stream "
              "= (peak − idle RSS) / streams, and the p99 inter-event gap minus direct's.", "", lean, ""]
    L += ["## Scenarios not run yet", ""] + [f"- {s['name']}: {s['reason']}" for s in res["skipped_scenarios"]]
    L += ["", "## Versions", ""]
    for t in res["targets"]:
        L.append(f"- {t['label']}: {t.get('version') or '–'}" +
                 (f" — `{t['command']}`" if t.get("command") and t["name"] != "sluice" else ""))
    L.append("")
    return "\n".join(L)


def results_md(res, rel_base):
    body = markdown(res, rel_base)
    intro = ("<!-- Written by bench/compare --full (make bench); do not edit by hand. -->\n"
             "Latest full comparison run. Reproduce with `make bench` "
             "(= `bench/peers/install && bench/compare --full`); raw figures: "
             f"[`{rel_base}.json`]({rel_base}.json). See bench/README.md for what is measured and how.\n\n")
    first, rest = body.split("\n", 1)
    return first + "\n\n" + intro + rest.lstrip("\n")


# ---------------------------------------------------------------------------
# SVG charts.
def _svg(w, h, body):
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'font-family="Helvetica, Arial, sans-serif" font-size="12">\n'
            f'<rect width="{w}" height="{h}" fill="#ffffff"/>\n{body}</svg>\n')


def radar_svg(res):
    """Axes QPS, mean latency, P99, memory; one polygon per gateway; every axis normalized so that the
    best gateway scores 1 (bigger is better: latency and memory are inverted)."""
    gws = []
    for t in res["targets"]:
        if t["name"] == "direct" or t["status"] != "ok":
            continue
        chat = _scen(t, "chat")
        if not _ok(chat):
            continue
        lat = chat.get("latency_ms") or {}
        gws.append((t, chat["rps"], lat.get("mean"), lat.get("p99"), t.get("peak_rss_kb")))
    axes = ["QPS", "mean latency", "P99 latency", "memory"]
    W, H, cx, cy, R = 940, 480, 290, 250, 175
    body = ['<text x="20" y="28" font-size="16" font-weight="bold">Gateways relative to the best '
            '(chat scenario; memory = peak RSS)</text>',
            '<text x="20" y="46" fill="#555">1.0 = best on that axis; latency and memory inverted '
            '(best/value), QPS as value/best. Bigger polygon = better.</text>']
    angles = [-math.pi / 2 + i * 2 * math.pi / len(axes) for i in range(len(axes))]
    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{cx + R * ring * math.cos(a):.1f},{cy + 20 + R * ring * math.sin(a):.1f}" for a in angles)
        body.append(f'<polygon points="{pts}" fill="none" stroke="#ccc"/>')
        body.append(f'<text x="{cx + 3}" y="{cy + 20 - R * ring + 12:.1f}" fill="#999" font-size="10">{ring:g}</text>')
    for a, name in zip(angles, axes):
        x, y = cx + R * math.cos(a), cy + 20 + R * math.sin(a)
        body.append(f'<line x1="{cx}" y1="{cy + 20}" x2="{x:.1f}" y2="{y:.1f}" stroke="#bbb"/>')
        lx, ly = cx + (R + 16) * math.cos(a), cy + 20 + (R + 16) * math.sin(a)
        anchor = "middle" if abs(math.cos(a)) < 0.3 else ("start" if math.cos(a) > 0 else "end")
        body.append(f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="{anchor}" font-weight="bold">{name}</text>')
    if gws:
        def best(i, lower):
            vals = [g[i] for g in gws if g[i]]
            return (min(vals) if lower else max(vals)) if vals else None
        bq, bm, bp, br = best(1, False), best(2, True), best(3, True), best(4, True)
        ly = 80
        for t, q, mean, p99, rss in gws:
            scores = [q / bq if bq and q else 0, bm / mean if bm and mean else 0, bp / p99 if bp and p99 else 0,
                      br / rss if br and rss else 0]
            col = COLORS.get(t["name"], "#333")
            pts = " ".join(f"{cx + R * s * math.cos(a):.1f},{cy + 20 + R * s * math.sin(a):.1f}"
                           for s, a in zip(scores, angles))
            body.append(f'<polygon points="{pts}" fill="{col}" fill-opacity="0.10" stroke="{col}" '
                        f'stroke-width="2"/>')
            body.append(f'<rect x="590" y="{ly - 10}" width="12" height="12" fill="{col}"/>')
            body.append(f'<text x="608" y="{ly}" font-weight="bold">{escape(t["label"])}</text>')
            body.append(f'<text x="608" y="{ly + 15}" fill="#555" font-size="11">{q:.0f} req/s, mean '
                        f'{_f(mean, "{:.2f}")} ms, p99 {_f(p99, "{:.2f}")} ms, {_f(_mib(rss))} MiB</text>')
            ly += 38
    else:
        body.append(f'<text x="{cx}" y="{cy}" text-anchor="middle">no gateway results</text>')
    return _svg(W, H, "\n".join(body) + "\n")


def bar_svg(title, subtitle, items, unit, fmt="{:.1f}", log_base=None):
    """items: [(label, value or None, color, note)]; horizontal bars from zero (negatives allowed).
    log_base: draw on a signed log scale, f(v) = sign(v) * log10(1 + |v| / log_base), so that values
    spanning several decades stay readable; ticks are labelled in real units."""
    def f(v):
        if log_base is None:
            return v
        return math.copysign(math.log10(1 + abs(v) / log_base), v)

    W, left, right, top, bh, gap = 860, 170, 250, 70, 22, 10
    H = top + len(items) * (bh + gap) + 34
    vals = [f(v) for _, v, _, _ in items if v is not None]
    vmax = max([0.0] + vals)
    vmin = min([0.0] + vals)
    if log_base is not None:
        vmax = max(vmax, f(log_base * 10))
    span = (vmax - vmin) or 1.0
    plot = W - left - right
    x0 = left + plot * (-vmin / span)

    def X(v):
        return x0 + plot * f(v) / span

    body = [f'<text x="20" y="26" font-size="16" font-weight="bold">{escape(title)}</text>',
            f'<text x="20" y="44" fill="#555">{escape(subtitle)}</text>']
    ticks = []
    if log_base is not None:
        t = log_base
        while f(t) <= vmax * 1.001:
            ticks.append(t)
            t *= 10
        if vmin < 0:
            t = log_base
            while -f(t) >= vmin * 1.001:
                ticks.append(-t)
                t *= 10
        body.append(f'<text x="{W - 20}" y="44" text-anchor="end" fill="#999" font-size="10">'
                    f'log scale, {escape(unit)}</text>')
    for t in ticks:
        x = X(t)
        body.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{H - 24}" stroke="#eee"/>')
        body.append(f'<text x="{x:.1f}" y="{H - 12}" text-anchor="middle" fill="#999" font-size="10">{t:g}</text>')
    body.append(f'<line x1="{x0:.1f}" y1="{top - 6}" x2="{x0:.1f}" y2="{H - 24}" stroke="#888"/>')
    y = top
    for label, v, col, note in items:
        body.append(f'<text x="{left - 8}" y="{y + bh * 0.7:.1f}" text-anchor="end">{escape(label)}</text>')
        if v is None:
            body.append(f'<text x="{x0 + 6:.1f}" y="{y + bh * 0.7:.1f}" fill="#999">{escape(note or "n/a")}</text>')
        else:
            x1 = X(v)
            x, w = min(x0, x1), abs(x1 - x0)
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{max(w, 1):.1f}" height="{bh}" fill="{col}"/>')
            tx = max(x0, x1) + 6
            body.append(f'<text x="{tx:.1f}" y="{y + bh * 0.7:.1f}">{fmt.format(v)} {escape(unit)}'
                        f'{(" — " + escape(note)) if note else ""}</text>')
        y += bh + gap
    return _svg(W, H, "\n".join(body) + "\n")


def ttft_svg(res):
    items = []
    st_desc = _stream_desc(res)
    for t in res["targets"]:
        if t["name"] == "direct":
            continue
        e = _scen(t, "stream")
        col = COLORS.get(t["name"], "#333")
        if t["status"] != "ok":
            items.append((t["label"], None, col, t["status"][:70]))
        elif not _ok(e) or not e.get("ttft_overhead_ms"):
            items.append((t["label"], None, col, "no TTFT (needs a streaming-aware generator)" if _ok(e)
                          else (e.get("status") or "not run")))
        else:
            note = "buffered" if e.get("buffered") else ""
            items.append((t["label"], e["ttft_overhead_ms"].get("p50"), col, note))
    return bar_svg("Time-to-first-token overhead over direct (p50)",
                   f"streaming chat, {st_desc}; gateway TTFT p50 minus mock-direct TTFT p50", items, "ms",
                   "{:+.2f}", log_base=0.1)


def cpu_svg(res):
    items = []
    for t in res["targets"]:
        if t["name"] == "direct":
            continue
        e = _scen(t, "chat")
        col = COLORS.get(t["name"], "#333")
        if t["status"] != "ok":
            items.append((t["label"], None, col, t["status"][:70]))
        elif not _ok(e):
            items.append((t["label"], None, col, e.get("status") or "not run"))
        else:
            items.append((t["label"], e.get("cpu_us_per_req"), col, ""))
    return bar_svg("Gateway CPU time per request", "small non-streaming chat; user+system time of the gateway's "
                   "process tree over the measured interval / requests", items, "µs", "{:.0f}", log_base=10)


def _rounded(x):
    if isinstance(x, float):
        return round(x, 3)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def _dumps(res):
    """Indented JSON, except that each scenario entry is one compact line (keeps files small and diffable)."""
    res = json.loads(json.dumps(res))
    entries = {}
    for t in res.get("targets", []):
        for name in list((t.get("scenarios") or {})):
            key = f"@@entry{len(entries)}@@"
            entries[key] = json.dumps(t["scenarios"][name], separators=(",", ":"), ensure_ascii=False)
            t["scenarios"][name] = key
    text = json.dumps(res, indent=1, ensure_ascii=False)
    for key, val in entries.items():
        text = text.replace(json.dumps(key), val, 1)
    return text


def write_all(res, base):
    files = []
    with open(base + ".json", "w") as f:
        f.write(_dumps(_rounded(res)) + "\n")
    files.append(base + ".json")
    for suffix, fn in (("-radar.svg", radar_svg), ("-ttft.svg", ttft_svg), ("-cpu.svg", cpu_svg)):
        with open(base + suffix, "w") as f:
            f.write(fn(res))
        files.append(base + suffix)
    with open(base + ".md", "w") as f:
        f.write(markdown(res, os.path.basename(base)))
    files.append(base + ".md")
    return files
