"""HTML building blocks of the report: escaping, number formats, tables, badges and the page with its CSS.

Everything is inline: the page loads nothing (no font, script, stylesheet or image from anywhere).
"""
from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

STATUS_CLASS = {"PASS": "pass", "FAIL": "fail", "UNKNOWN": "unknown", "info": "info", "ok": "pass",
                "failed": "fail", "skipped": "info", "cached": "info", "not run": "unknown"}


def esc(value: Any) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape("" if value is None else str(value), quote=True)


def num(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (thousands grouped for large integers); '-' when absent."""
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-" if v is None else esc(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "∞" if v > 0 else ("-∞" if v < 0 else "-")
    if isinstance(v, int) or abs(v) >= 10 ** digits:
        return f"{round(v):,}"
    return f"{v:.{digits}g}"


def si(v: Any, unit: str = "") -> str:
    """A count with an SI prefix: 1.82 G, 46.9 M, 352 (''-'' when absent)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "-"
    for div, p in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g} {p}{unit}"
    return f"{v:.3g} {unit}".strip()


def nbytes(v: Any) -> str:
    """Bytes in kB/MB/GB (decimal)."""
    return si(v, "B")


def ms(v: Any) -> str:
    """Milliseconds with 3 significant digits."""
    return "-" if not isinstance(v, (int, float)) else f"{v:.3g} ms"


def badge(status: str) -> str:
    """A coloured status label (PASS, FAIL, UNKNOWN, info, ok, failed ...)."""
    return f'<span class="badge {STATUS_CLASS.get(status, "info")}">{esc(status)}</span>'


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: Sequence[int] = (),
          cls: str = "") -> str:
    """An HTML table; cells are pre-rendered HTML (escape text with ``esc``); ``numeric`` columns align right."""
    right = set(numeric)

    def cell(tag: str, i: int, content: str) -> str:
        return f'<{tag} class="num">{content}</{tag}>' if i in right else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows)
    attr = f' class="{esc(cls)}"' if cls else ""
    return f'<div class="scroll"><table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    """A two-column definition grid (labels escaped, values pre-rendered HTML)."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def notes(lines: Iterable[str]) -> str:
    """Notes and warnings of a step as a list (WARNING lines highlighted)."""
    items = [f'<li class="{"warn" if str(n).startswith("WARNING") else ""}">{esc(n)}</li>' for n in lines if n]
    return f'<ul class="notes">{"".join(items)}</ul>' if items else ""


CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--card:#fff;--accent:#1d4ed8}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 "DejaVu Sans",Verdana,Arial,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#0f172a;color:#f8fafc;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header .sub{color:#cbd5e1;font-size:13px;margin-top:4px}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 28px;
 display:flex;flex-wrap:wrap;gap:14px;font-size:13px}
nav a{color:var(--accent);text-decoration:none}
main{padding:18px 28px 40px;max-width:1500px}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:0 0 18px}
h2{font-size:18px;margin:0 0 12px}
h3{font-size:15px;margin:16px 0 8px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;margin:4px 0 8px}
th,td{border-bottom:1px solid var(--line);padding:5px 10px;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.nowrap{white-space:nowrap}
tbody tr:hover{background:#f8fafc}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.badge.pass{background:#15803d}.badge.fail{background:#b91c1c}.badge.unknown{background:#b45309}
.badge.info{background:#64748b}
.verdict{font-size:15px;margin:0 0 10px}
.verdict .badge{font-size:15px;padding:3px 12px;margin-right:8px}
.facts{margin:0 0 12px;padding-left:20px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}
.kv dt{color:var(--muted)}.kv dd{margin:0;word-break:break-all}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(620px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:10px;background:#fff}
figure svg{display:block;width:100%;height:auto}
figcaption{color:var(--muted);font-size:12.5px;margin-top:6px}
figcaption b{color:var(--ink)}
.graph{overflow:auto;max-height:85vh;border:1px solid var(--line);border-radius:6px;background:#fff}
.graph svg{display:block;margin:0 auto}
.notes{margin:6px 0;padding-left:20px;color:var(--muted)}
.notes .warn{color:#b45309}
.error{color:#b91c1c}
.muted{color:var(--muted)}
.step{border-top:1px solid var(--line);padding-top:8px;margin-top:12px}
.step:first-of-type{border-top:0;margin-top:0}
"""


def page(title: str, subtitle: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: header, a sticky table of contents, and the (anchor, heading, body HTML) sections."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{esc(a)}"><h2>{esc(h)}</h2>{b}</section>' for a, h, b in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
            f'img-src data:">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>{esc(title)}</h1><div class="sub">{esc(subtitle)}</div></header>'
            f"<nav>{nav}</nav><main>{body}</main></body></html>")
