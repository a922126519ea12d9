"""What the HTML pages share: the page shell with its inline style sheet and refresh
script, escaping, number and time formats. No external asset of any kind: the exporter
often runs where there is no internet."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from html import escape
from typing import Final
from urllib.parse import quote

REFRESH_SECONDS: Final = 10
# The query that asks a page for its live part only (what the refresh script swaps in).
PART_QUERY: Final = "part=live"

_STYLE: Final = """
:root { --ok: #1a7f37; --warning: #9a6700; --critical: #cf222e; --nodata: #57606a;
  --line: #d0d7de; --muted: #57606a; --bg-critical: #ffebe9; --bg-warning: #fff8c5; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1f2328; background: #f6f8fa; font-size: 15px; line-height: 1.4; }
header.top { background: #24292f; color: #fff; padding: .6em 1.5em; display: flex;
  gap: 1.5em; align-items: baseline; flex-wrap: wrap; }
header.top h1 { font-size: 1.15em; margin: 0; }
header.top a { color: #d0d7de; } header.top .meta { color: #afb8c1; font-size: .9em; }
main { padding: 1em 1.5em 2em; max-width: 1400px; }
h2 { font-size: 1.15em; margin: 1.4em 0 .5em; } h2 a { color: inherit; }
section.model { background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: .2em 1em 1em; margin-bottom: 1em; }
section.model.status-critical { border-left: 6px solid var(--critical); }
section.model.status-warning { border-left: 6px solid var(--warning); }
section.model.status-ok { border-left: 6px solid var(--ok); }
table { border-collapse: collapse; width: 100%; background: #fff; }
caption { text-align: left; color: var(--muted); padding: .2em 0; caption-side: top; }
th, td { border-bottom: 1px solid var(--line); padding: .35em .6em; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
thead th { white-space: nowrap; }
table.board thead th, table.versions thead th { white-space: normal; }
table.board td.why { min-width: 18em; } table.auto { width: auto; min-width: 40em; }
div.scroll { overflow-x: auto; } tbody th[scope="row"] { white-space: nowrap; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.inactive td { color: var(--muted); }
.status { display: inline-block; font-weight: 700; padding: .05em .5em; border-radius: 1em;
  white-space: nowrap; border: 1px solid currentColor; }
.status::before { content: "\\25CF\\00a0"; }
.status.critical { color: var(--critical); background: var(--bg-critical); }
.status.warning { color: var(--warning); background: var(--bg-warning); }
.status.ok { color: var(--ok); background: #dafbe1; }
.status.nodata { color: var(--nodata); background: #eaeef2; }
.breach-critical { color: var(--critical); font-weight: 700; background: var(--bg-critical); }
.breach-warning { color: var(--warning); font-weight: 700; background: var(--bg-warning); }
ul.findings { margin: 0; padding-left: 1.1em; } ul.findings li.critical { color: var(--critical); }
ul.findings li.warning { color: var(--warning); } ul.findings li.info { color: var(--muted); }
.drifted { color: var(--warning); font-weight: 600; }
.muted { color: var(--muted); } .small { font-size: .85em; } .nowrap { white-space: nowrap; }
code { background: #eaeef2; padding: 0 .25em; border-radius: 3px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 1em; }
figure.chart { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px;
  padding: .5em; }
figure.chart figcaption { font-weight: 600; margin-bottom: .3em; }
svg.chart { max-width: 100%; height: auto; font-size: 11px; font-family: inherit; }
svg .grid { stroke: #eaeef2; } svg .axis { stroke: #8c959f; } svg .tick { fill: #57606a; }
svg .unit { fill: #57606a; font-size: 11px; }
svg .series polyline { fill: none; stroke-width: 2; }
svg .series.dashed polyline { stroke-dasharray: 6 4; }
svg .threshold line { stroke-width: 1.5; stroke-dasharray: 3 3; }
svg .threshold text { font-size: 11px; }
svg .live polyline { stroke: #0969da; } svg .live circle { fill: #0969da; }
svg .estimated polyline { stroke: #8250df; } svg .estimated circle { fill: #8250df; }
svg .evaluation polyline { stroke: #1a7f37; } svg .evaluation circle { fill: #1a7f37; }
svg .volume polyline { stroke: #57606a; } svg .volume circle { fill: #57606a; }
svg .threshold.warning line { stroke: var(--warning); }
svg .threshold.warning text { fill: var(--warning); }
svg .threshold.critical line { stroke: var(--critical); }
svg .threshold.critical text { fill: var(--critical); }
ul.legend { list-style: none; padding: 0; margin: .2em 0 0; display: flex; gap: 1.2em;
  font-size: .85em; flex-wrap: wrap; }
ul.legend .swatch { display: inline-block; width: 1.4em; height: 0; border-top: 3px solid;
  vertical-align: middle; margin-right: .35em; }
ul.legend .dashed .swatch { border-top-style: dashed; }
ul.legend .live { color: #0969da; } ul.legend .estimated { color: #8250df; }
ul.legend .evaluation { color: #1a7f37; } ul.legend .volume { color: #57606a; }
ul.legend li { color: #1f2328; } ul.legend li.live .swatch { border-color: #0969da; }
ul.legend li.estimated .swatch { border-color: #8250df; }
ul.legend li.evaluation .swatch { border-color: #1a7f37; }
ul.legend li.volume .swatch { border-color: #57606a; }
.bar { display: inline-block; height: .7em; background: #0969da; vertical-align: middle;
  border-radius: 2px; }
.bar.drift { background: var(--warning); }
p.note { color: var(--muted); font-size: .9em; max-width: 70em; }
"""

# Swaps the live part in place every few seconds (no reload, no flicker); keeps the
# page as it is when a fetch fails. Without script, <noscript> reloads the whole page.
# It asks with the live part's ETag (If-None-Match): an unchanged part is a 304 without
# a body, and only the times relative to now (<time data-rel>, which the ETag leaves
# out) are brought up to date, against the server's clock (its Date header).
_SCRIPT: Final = f"""
(function () {{
  var live = document.getElementById("live");
  if (!live || !window.fetch) return;
  var etag = live.getAttribute("data-etag");
  var skew = 0;
  function ago(seconds) {{
    var size = Math.abs(seconds), amount;
    if (size < 5) return "just now";
    if (size < 60) amount = Math.floor(size) + " s";
    else if (size < 3600) amount = Math.floor(size / 60) + " min";
    else if (size < 86400) amount = Math.floor(size / 3600) + " h";
    else amount = Math.floor(size / 86400) + " d";
    return seconds > 0 ? amount + " ago" : "in " + amount;
  }}
  function relative() {{
    var now = Date.now() + skew, times = live.querySelectorAll("time[data-rel]");
    for (var i = 0; i < times.length; i++) {{
      var t = times[i], rel = t.getAttribute("data-rel");
      if (rel === "now") {{
        t.textContent = new Date(now).toISOString().slice(0, 19).replace("T", " ") + " UTC";
        continue;
      }}
      var at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) continue;
      var text = ago((now - at) / 1000);
      t.textContent = rel === "for" ? text.replace(/ ago$/, "") : text;
    }}
  }}
  function refresh() {{
    var url = location.pathname + (location.search ? location.search + "&" : "?") + "{PART_QUERY}";
    var headers = etag ? {{"If-None-Match": etag}} : {{}};
    fetch(url, {{cache: "no-store", headers: headers}}).then(function (r) {{
      var date = Date.parse(r.headers.get("Date") || "");
      if (!isNaN(date)) skew = date - Date.now();
      if (r.status === 304) return null;
      if (!r.ok) throw new Error(r.status);
      etag = r.headers.get("ETag");
      return r.text();
    }}).then(function (html) {{
      if (html !== null) live.innerHTML = html;
      relative();
      live.setAttribute("data-refreshed", String(Date.now()));
      live.setAttribute("data-refresh", html === null ? "unchanged" : "replaced");
    }}).catch(function () {{}});
  }}
  setInterval(refresh, {REFRESH_SECONDS * 1000});
}})();
"""


def live_etag(part: bytes) -> str:
    """The ETag of a page's live part: a hash of it without the texts of its times
    relative to now (`data-rel`), which the refresh script brings up to date itself, so
    it changes when the data does rather than every second."""
    fixed = _RELATIVE_TEXT.sub(rb"\1</time>", part)
    return '"' + hashlib.blake2b(fixed, digest_size=16).hexdigest() + '"'


_RELATIVE_TEXT: Final = re.compile(rb'(<time [^>]*data-rel="[a-z]+"[^>]*>)[^<]*</time>')


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weakly compared, RFC 9110 13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == etag for t in if_none_match.split(","))


def page(title: str, header: str, live: str, footer: str = "", etag: str | None = None) -> bytes:
    """A whole page: `live` (HTML) is the part the script refreshes; `etag`, its ETag if
    the server answers its refreshes with one."""
    tag = f' data-etag="{escape(etag)}"' if etag is not None else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS * 3}"></noscript>
<style>{_STYLE}</style></head>
<body>
{header}
<main id="live"{tag}>{live}</main>
{footer}
<script>{_SCRIPT}</script>
</body></html>
""".encode()


def top_bar(exporter_version: str, extra: str = "") -> str:
    return (
        '<header class="top"><h1><a href="/" style="color:inherit;text-decoration:none">'
        "model-health-exporter</a></h1>"
        f'<span class="meta">version {escape(exporter_version)}</span>'
        '<nav class="meta"><a href="/metrics">Metrics</a> &middot; '
        '<a href="/api/v1/models">Models (JSON)</a> &middot; <a href="/healthz">Health</a>'
        f' &middot; <a href="/readyz">Readiness</a></nav>{extra}</header>'
    )


def model_href(name: str) -> str:
    return "/models/" + quote(name, safe="")


def status_badge(status: str, title: str = "") -> str:
    css = "nodata" if status == "no data" else status
    tip = f' title="{escape(title)}"' if title else ""
    return f'<span class="status {css}"{tip}>{escape(status)}</span>'


def fmt(value: float | None, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "&ndash;" if value is None else f"{value * 100:.{digits}f}%"


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(at: float, now: float) -> str:
    """'just now', '42 s ago', '3 min ago', '5 h ago', '2 d ago' ('in ...' ahead)."""
    delta = now - at
    if abs(delta) < 5:
        return "just now"
    size = abs(delta)
    for limit, unit, text in ((60, 1, "s"), (3600, 60, "min"), (86_400, 3600, "h")):
        if size < limit:
            amount = f"{int(size // unit)} {text}"
            break
    else:
        amount = f"{int(size // 86_400)} d"
    return f"{amount} ago" if delta > 0 else f"in {amount}"


def since(at: float | None, now: float, what: str) -> str:
    """'since 16:31 UTC (12 min)' with `what` as its title; empty for None."""
    if at is None:
        return ""
    moment = datetime.fromtimestamp(at, UTC)
    same_day = moment.date() == datetime.fromtimestamp(now, UTC).date()
    shown = moment.strftime("%H:%M UTC" if same_day else "%Y-%m-%d %H:%M UTC")
    length = ago(at, now).removesuffix(" ago")
    iso = moment.isoformat(timespec="seconds")
    return (
        f'<span class="since small" title="{escape(what)}">since '
        f'<time datetime="{iso}">{shown}</time> '
        f'(<time datetime="{iso}" data-rel="for">{length}</time>)</span>'
    )


def when(at: float | None, now: float) -> str:
    """'3 min ago' with the timestamp beside it, in a <time> element."""
    if at is None:
        return '<span class="muted">never</span>'
    moment = datetime.fromtimestamp(at, UTC)
    same_day = moment.date() == datetime.fromtimestamp(now, UTC).date()
    shown = moment.strftime("%H:%M:%S UTC") if same_day else timestamp(at)
    return f'{relative(at, now)} <span class="muted small nowrap">{shown}</span>'


def relative(at: float, now: float) -> str:
    """'3 min ago' in a <time> element that the refresh script keeps up to date."""
    moment = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
    return f'<time datetime="{moment}" title="{timestamp(at)}" data-rel="ago">{ago(at, now)}</time>'


def updated(now: float) -> str:
    """The time a page's live part was rendered, which the refresh script moves on when
    the server says that the part is unchanged."""
    return f'<time data-rel="now">{timestamp(now)}</time>'
