"""HTML for the console's pages: every value is escaped here, nothing is inlined.

No template engine: pages are a few dozen lines each, built from the helpers below,
which escape every text they are given (``esc``), so a person's name can never become
markup. No inline script or style (the Content-Security-Policy forbids them): the
look is /static/console.css, the live view and the progress lines /static/console.js.
"""
from __future__ import annotations

from html import escape
from typing import Iterable, Optional


ACTIVE = ' class="active"'


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def layout(title: str, body: str, nav: Iterable[tuple[str, str]] = (), active: str = "", csrf: Optional[str] = None,
           who: Optional[str] = None, product: str = "edge-verify console") -> str:
    links = "".join(f'<a href="{esc(href)}"{ACTIVE if href == active else ""}>{esc(label)}</a>' for href, label in nav)
    logout = ""
    if csrf is not None:
        logout = (f'<form method="post" action="/logout" class="logout">{hidden_csrf(csrf)}'
                  f'<span class="who">{esc(who)}</span><button type="submit">Log out</button></form>')
    meta = f'<meta name="csrf-token" content="{esc(csrf)}">' if csrf is not None else ""
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{meta}'
            f'<title>{esc(title)} · {esc(product)}</title><link rel="icon" href="/static/icon.svg">'
            f'<link rel="stylesheet" href="/static/console.css"><script src="/static/console.js" defer></script>'
            f'</head><body><header><span class="product">{esc(product)}</span><nav>{links}</nav>{logout}</header>'
            f'<main><h1>{esc(title)}</h1>{body}</main></body></html>')


def hidden_csrf(token: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(token)}">'


def form(action: str, csrf: str, fields: str, button: str, css: str = "", upload: bool = False) -> str:
    """A POST form with the CSRF token; ``upload``: multipart, for file fields."""
    klass = f' class="{esc(css)}"' if css else ""
    kind = ' enctype="multipart/form-data"' if upload else ""
    return (f'<form method="post" action="{esc(action)}"{klass}{kind}>{hidden_csrf(csrf)}{fields}'
            f'<button type="submit">{esc(button)}</button></form>')


def field(label: str, name: str, value: str = "", kind: str = "text", required: bool = True, extra: str = "") -> str:
    need = " required" if required else ""
    return (f'<label>{esc(label)} <input type="{esc(kind)}" name="{esc(name)}" value="{esc(value)}"{need}'
            f'{extra}></label>')


def table(headings: Iterable[str], rows: Iterable[Iterable[str]], css: str = "") -> str:
    """``rows`` cells are HTML already (escape them with esc)."""
    head = "".join(f"<th>{esc(text)}</th>" for text in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    klass = f' class="{esc(css)}"' if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def notice(text: str, kind: str = "info") -> str:
    return f'<p class="notice {esc(kind)}">{esc(text)}</p>'


def status_word(ok: Optional[bool], yes: str = "PASS", no: str = "FAIL", neither: str = "SKIP") -> str:
    kind, word = ("pass", yes) if ok else (("fail", no) if ok is False else ("skip", neither))
    return f'<span class="badge {kind}">{esc(word)}</span>'
