"""How console pages are rendered: one Jinja2 environment (autoescaping everywhere), Markdown
rendered with raw HTML disabled and unsafe link schemes refused, and the formatting filters
the templates share.

Everything user-supplied reaches a page through autoescaping or through :func:`markdown`, whose
HTML is escaped by markdown-it (``html=False``: a ``<script>`` in a message is text) and then
cleaned by nh3 (an allow-list of tags and attributes, ``http``/``https``/``mailto`` links only,
``rel="noopener noreferrer"``), so a bug in one layer is caught by the other.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Final

import nh3
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["FOLD_CHARS", "environment", "markdown"]

#: Messages longer than this are folded (the first part shown, the rest on demand).
FOLD_CHARS: Final = 2000
#: Markdown longer than this is shown as plain text (rendering it would cost more than it helps).
MARKDOWN_MAX: Final = 200_000

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)
_TAGS: Final = {
    "a", "blockquote", "br", "code", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul", "del",
}  # fmt: skip
_ATTRIBUTES: Final = {"a": {"href", "title"}}


def markdown(text: str) -> Markup:
    """``text`` as sanitised HTML (plain escaped text when it is very long)."""
    if len(text) > MARKDOWN_MAX:
        return Markup("<pre>%s</pre>") % text
    html = _MD.render(text)
    cleaned = nh3.clean(
        html,
        tags=set(_TAGS),
        attributes={tag: set(names) for tag, names in _ATTRIBUTES.items()},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(cleaned)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(value: Decimal | None) -> str:
    """An exact decimal, without exponent or trailing zeros beyond the cents."""
    if value is None:
        return ""
    text = format(value, "f")
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0").ljust(2, "0")
        text = f"{whole}.{fraction}"
    return text


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _data(value: Any) -> str:
    """A value for a ``data-*`` attribute (JSON; the attribute is escaped by autoescaping)."""
    return json.dumps(value, default=str, separators=(",", ":"))


def environment() -> Environment:
    """The templates of the console, loaded from the package."""
    folder = resources.files(__package__).joinpath("templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        markdown=markdown,
        when=_when,
        money=_money,
        count=_count,
        as_json=_as_json,
        data=_data,
    )
    env.globals["FOLD_CHARS"] = FOLD_CHARS
    return env
