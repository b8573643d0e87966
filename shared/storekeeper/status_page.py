"""`status --html`: one self-contained page (inline SVG and CSS, no script, no network).

Charts: usage over time against the watermarks, vector buckets against the quota,
pending deltas over time, snapshot history (records and bytes per version). Every
figure a chart shows is also in a table, so the page reads without the charts and
tests can check the numbers as text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime

from storekeeper.models.status import HistoryPoint, StoreStatus
from storekeeper.policies.units import format_size

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 64, 16, 16, 36
COLORS = ["#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c", "#4d7c0f", "#a16207"]
LIMIT_COLORS = {"low": "#16a34a", "high": "#d97706", "hard": "#dc2626", "quota": "#dc2626"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;
color:#111827;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb}
.sub{color:#6b7280;margin:0 0 16px}table{border-collapse:collapse;margin:6px 0 12px}
th,td{padding:4px 10px;border-bottom:1px solid #f3f4f6;text-align:left;white-space:nowrap}
th{background:#f9fafb;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#15803d}.warn{color:#b45309;font-weight:600}.bad{color:#b91c1c;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #e5e7eb;border-radius:6px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}svg text{font:11px system-ui,sans-serif;fill:#374151}
.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.empty{color:#6b7280;font-style:italic}
"""


#: html.escape(quote=True)'s table; `import html` loads html.entities (~2,000 names) for unescape alone
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"})


def _e(x: object) -> str:
    return str(x).translate(_ESCAPES)


def _state_class(state: str) -> str:
    return {"ok": "ok", "above-high": "warn", "at-quota": "bad", "above-hard": "bad", "error": "bad"}.get(
        state, ""
    )


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.1f}{unit}"
    return f"{s:.0f}s"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], cls: str = "") -> str:
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# -- charts ------------------------------------------------------------------------------------


def axis_ticks(top: float, whole: bool = False) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 x 10^k; whole numbers when `whole`) up to `top`:
    about four gridlines a reader can add up, never 22 %, 45 %, 68 %."""
    if top <= 0:
        return [0.0]
    raw = top / 4
    mag = 10 ** math.floor(math.log10(raw))
    if whole:
        mag = max(1, mag)
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in steps if m * mag >= raw * (1 - 1e-9))
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


def line_chart(
    chart_id: str,
    series: dict[str, list[tuple[datetime, float]]],
    limits: dict[str, float],
    fmt: str = "count",
) -> str:
    """Lines over time with horizontal limit lines; `fmt` is "count", "bytes" or "ratio"."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f'<p class="empty" id="{_e(chart_id)}">no history yet</p>'
    t0 = min(p[0] for p in pts).timestamp()
    t1 = max(p[0] for p in pts).timestamp()
    y_max = max([*(p[1] for p in pts), *limits.values(), 1e-9]) * 1.08
    t_span = (t1 - t0) or 1.0

    def x(t: datetime) -> float:
        return PAD_L + (t.timestamp() - t0) / t_span * (W - PAD_L - PAD_R) if t1 > t0 else (W + PAD_L) / 2

    def y(v: float) -> float:
        return PAD_T + (1 - v / y_max) * (H - PAD_T - PAD_B)

    def label(v: float) -> str:
        return f"{v * 100:.3g}%" if fmt == "ratio" else format_size(int(v)) if fmt == "bytes" else f"{v:g}"

    parts = [
        f'<svg id="{_e(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" role="img">',
        f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#9ca3af"/>',
        f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#9ca3af"/>',
    ]
    for v in axis_ticks(y_max / 1.08, whole=fmt == "count"):
        parts.append(f'<text x="{PAD_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{_e(label(v))}</text>')
        parts.append(
            f'<line x1="{PAD_L}" y1="{y(v):.1f}" x2="{W - PAD_R}" y2="{y(v):.1f}" stroke="#f3f4f6"/>'
        )
    first, last = datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC)
    parts.append(f'<text x="{PAD_L}" y="{H - 12}">{first:%Y-%m-%d %H:%M}</text>')
    if t1 > t0:
        parts.append(f'<text x="{W - PAD_R}" y="{H - 12}" text-anchor="end">{last:%Y-%m-%d %H:%M}</text>')
    for name, v in limits.items():
        color = LIMIT_COLORS.get(name, "#6b7280")
        parts.append(
            f'<line class="limit" data-limit="{_e(name)}" data-value="{v:g}" x1="{PAD_L}" y1="{y(v):.1f}" '
            f'x2="{W - PAD_R}" y2="{y(v):.1f}" stroke="{color}" stroke-dasharray="6 4"/>'
        )
        parts.append(
            f'<text x="{W - PAD_R - 2}" y="{y(v) - 3:.1f}" text-anchor="end" fill="{color}">'
            f"{_e(name)} {_e(label(v))}</text>"
        )
    for i, (name, s) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        s = sorted(s)
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s)
        parts.append(
            f'<polyline class="series" data-series="{_e(name)}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{coords}"/>'
        )
        for t, v in s:
            parts.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color}" data-value="{v:g}">'
                f"<title>{_e(name)} {t:%Y-%m-%d %H:%M}: {_e(label(v))}</title></circle>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLORS[i % len(COLORS)]}"></i>{_e(n)}</span>'
        for i, n in enumerate(sorted(series))
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def bar_chart(chart_id: str, bars: list[tuple[str, float, bool]], fmt: str) -> str:
    """One bar per label (versions oldest first); the live one is highlighted."""
    if not bars:
        return f'<p class="empty" id="{_e(chart_id)}">no versions</p>'
    h, top = 160, max(b[1] for b in bars) or 1.0
    bw = max(8.0, min(48.0, (W - PAD_L - PAD_R) / len(bars) - 6))
    parts = [f'<svg id="{_e(chart_id)}" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h + 40}">']
    for i, (name, v, live) in enumerate(bars):
        bh = v / top * h
        bx = PAD_L + i * (bw + 6)
        val = format_size(int(v)) if fmt == "bytes" else f"{v:g}"
        parts.append(
            f'<rect class="bar" data-version="{_e(name)}" data-value="{v:g}" '
            f'x="{bx:.1f}" y="{10 + h - bh:.1f}" '
            f'width="{bw:.1f}" height="{bh:.1f}" fill="{"#16a34a" if live else "#93c5fd"}">'
            f"<title>{_e(name)}: {_e(val)}{' (live)' if live else ''}</title></rect>"
        )
        parts.append(
            f'<text x="{bx + bw / 2:.1f}" y="{h + 24}" text-anchor="middle">'
            f"{_e(name[:12].lstrip('0') or '0')}</text>"
        )
    parts.append(
        f'<text x="{PAD_L - 6}" y="20" text-anchor="end">'
        f"{_e(format_size(int(top)) if fmt == 'bytes' else f'{top:g}')}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _figure(caption: str, body: str) -> str:
    return f"<figure><figcaption>{_e(caption)}</figcaption>{body}</figure>"


def _series(history: list[HistoryPoint], field: str) -> dict[str, list[tuple[datetime, float]]]:
    out: dict[str, list[tuple[datetime, float]]] = {}
    for p in history:
        for name, v in getattr(p, field).items():
            out.setdefault(name, []).append((p.at, float(v)))
    return out


# -- the page -----------------------------------------------------------------------------------


def render_html(st: StoreStatus) -> str:
    """The whole page as one string."""
    sections: list[str] = []
    problems = st.problems()
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems)
        sections.append(f'<h2>Attention</h2><ul class="bad" id="problems">{items}</ul>')

    rows = [
        [
            _e(c.collection) + ("" if c.store == "main" else f" <small>({_e(c.store)})</small>"),
            _e(c.live_version or ("error" if c.error else "none")),
            _e(c.record_count if c.record_count is not None else "?"),
            _e(human_age(c.pointer_age_s)),
            _e(c.pending_deltas),
            _e(human_age(c.oldest_pending_age_s)),
            _e(c.versions),
            _e(format_size(c.versions_bytes)),
        ]
        for c in st.collections
    ]
    heads = ["collection", "live version", "records", "pointer age", "pending", "oldest", "versions", "bytes"]
    sections.append("<h2>Collections</h2>" + _table(heads, rows, {2, 4, 6, 7}, "collections"))

    rows = [
        [
            _e(b.store),
            _e(b.bucket),
            _e(format_size(b.bytes)),
            _e(b.objects),
            _e(format_size(b.capacity) if b.capacity else "-"),
            _e(f"{b.ratio:.1%}" if b.ratio is not None else "-"),
            _e(f"{b.low:.0%} / {b.high:.0%} / {b.hard:.0%}"),
            f'<span class="{_state_class(b.state)}">{_e(b.state)}</span>',
        ]
        for b in st.buckets
    ]
    heads = ["store", "bucket", "used", "objects", "capacity", "usage", "low/high/hard", "state"]
    sections.append("<h2>Buckets</h2>" + _table(heads, rows, {2, 3, 4, 5}, "buckets"))

    if st.vectors:
        rows = [
            [
                _e(v.store),
                _e(v.buckets),
                _e(v.quota),
                f'<span class="{_state_class(v.state)}">{_e(v.error or v.state)}</span>',
            ]
            for v in st.vectors
        ]
        sections.append(
            "<h2>Vector buckets</h2>"
            + _table(["store", "buckets", "quota", "state"], rows, {1, 2}, "vectors")
        )

    rows = [
        [
            _e(f.store),
            _e(f.metric),
            _e(f.target),
            _e(f.text),
            _e(f.trend),
        ]
        for f in st.forecasts
    ]
    sections.append(
        "<h2>Forecast</h2>"
        + _table(["store", "metric", "reaches", "when", "trend"], rows, set(), "forecasts")
    )

    charts: list[str] = []
    usage = _series(st.history, "usage")
    for b in st.buckets:
        s = usage.get(b.store, [])
        if b.capacity:
            ratios = {b.store: [(t, v / b.capacity) for t, v in s]}
            limits = {"low": b.low, "high": b.high, "hard": b.hard}
            charts.append(
                _figure(
                    f"usage of {b.store} ({b.bucket}) against the watermarks",
                    line_chart(f"usage-{b.store}", ratios, limits, "ratio"),
                )
            )
        else:
            charts.append(
                _figure(
                    f"usage of {b.store} ({b.bucket}); no capacity set",
                    line_chart(f"usage-{b.store}", {b.store: s}, {}, "bytes"),
                )
            )
    vec = _series(st.history, "vector_buckets")
    for v in st.vectors:
        charts.append(
            _figure(
                f"vector buckets of {v.store} against the quota",
                line_chart(f"vectors-{v.store}", {v.store: vec.get(v.store, [])}, {"quota": float(v.quota)}),
            )
        )
    charts.append(_figure("pending deltas", line_chart("pending", _series(st.history, "pending"), {})))
    sections.append('<h2>History</h2><div class="charts">' + "".join(charts) + "</div>")

    snaps = []
    for c in st.collections:
        hist = list(reversed(c.history))
        rec = [(h.version, float(h.record_count or 0), h.live) for h in hist]
        size = [(h.version, float(h.bytes), h.live) for h in hist]
        snaps.append(
            _figure(
                f"{c.collection}: records per version",
                bar_chart(f"snap-records-{c.collection}", rec, "count"),
            )
        )
        snaps.append(
            _figure(
                f"{c.collection}: bytes per version", bar_chart(f"snap-bytes-{c.collection}", size, "bytes")
            )
        )
        rows = [
            [
                _e(h.version + (" (live)" if h.live else "")),
                _e(h.record_count if h.record_count is not None else "?"),
                _e(format_size(h.bytes)),
                _e(h.parent or "-"),
                _e(f"{h.created_at:%Y-%m-%d %H:%M}" if h.created_at else "-"),
            ]
            for h in c.history
        ]
        snaps.append(
            _table(
                ["version", "records", "bytes", "parent", "created"], rows, {1, 2}, f"versions-{c.collection}"
            )
        )
    sections.append('<h2>Snapshot history</h2><div class="charts">' + "".join(snaps) + "</div>")

    if st.last_run:
        r = st.last_run
        mode = "apply" if r.apply else "dry run"
        sections.append(
            "<h2>Last reaper run</h2>"
            + _table(
                [
                    "run",
                    "started",
                    "mode",
                    "planned",
                    "protected",
                    "deferred",
                    "tasks",
                    "sent",
                    "bytes planned",
                    "errors",
                ],
                [
                    [
                        _e(r.run_id),
                        _e(f"{r.started_at:%Y-%m-%d %H:%M:%S}"),
                        _e(mode),
                        _e(r.planned),
                        _e(r.protected),
                        _e(r.deferred),
                        _e(r.tasks),
                        _e(r.sent),
                        _e(format_size(r.bytes_planned)),
                        _e(r.errors),
                    ]
                ],
                {3, 4, 5, 6, 7, 8, 9},
                "last-run",
            )
        )
    else:
        sections.append('<h2>Last reaper run</h2><p class="empty">no reaper report in this store yet</p>')

    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>storekeeper status: {_e(st.store)}</title><style>{CSS}</style></head><body>"
        f'<h1>storekeeper status</h1><p class="sub">{_e(st.store)} &middot; measured '
        f"{st.measured_at:%Y-%m-%d %H:%M:%S} UTC &middot; {len(st.history)} history point(s)</p>"
        + "".join(sections)
        + "</body></html>\n"
    )
