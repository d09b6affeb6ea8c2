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
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from importlib import resources
from typing import Any, Final, Protocol

import nh3
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = [
    "FOLD_CHARS",
    "FRAGMENTS_SLOT",
    "Fragments",
    "environment",
    "fragments_bytes",
    "markdown",
    "split_at_fragments",
]

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
    return Markup(cleaned)  # cleaned by nh3 just above


#: Bidirectional controls (embeddings, overrides, isolates): shown as visible codes, so an
#: override cannot reorder what a reader sees ("gnp.exe" shown as "exe.png").
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def _visible_bidi(match: re.Match[str]) -> str:
    return f"[U+{ord(match.group()):04X}]"


def _finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` output passes here before escaping: bidi controls made visible
    (in Markup too: the replacement holds no markup characters)."""
    if isinstance(value, str) and _BIDI.search(value):
        replaced = _BIDI.sub(_visible_bidi, value)
        return Markup(replaced) if isinstance(value, Markup) else replaced
    return value


class Versioned(Protocol):
    """Something a fragment shows, with a key that changes whenever what it shows changes."""

    @property
    def version(self) -> Hashable:
        """The fragment's cache key."""


class Fragments:
    """Rendered page fragments, UTF-8 encoded, kept by a key that changes whenever what they
    show changes (see ``MessageView.version``). Least recently used first out, up to
    ``max_bytes`` bytes of HTML. Pages render on the event loop's thread, so no lock is
    needed. Kept encoded: a page of cached fragments is one ``bytes.join``, with no
    re-encoding of megabytes of HTML per request."""

    def __init__(self, max_bytes: int = 64_000_000) -> None:
        self.max_bytes = max_bytes
        self._html: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0

    def join(self, items: Iterable[Versioned], render: Callable[[Any], str]) -> bytes:
        """The fragments of ``items`` (by their ``version``) one after the other, each
        rendered by ``render(item)`` when it is not kept. One tight loop: a page of 1,000
        kept messages costs 1,000 lookups and one ``bytes.join``."""
        kept = self._html
        found: list[bytes] = []
        for item in items:
            key = item.version
            html = kept.get(key)
            if html is None:
                html = self._keep(key, render(item).encode())  # autoescaped template output
            else:
                kept.move_to_end(key)
            found.append(html)
        return b"".join(found)

    def _keep(self, key: Hashable, html: bytes) -> bytes:
        if len(html) <= self.max_bytes:
            self._html[key] = html
            self._bytes += len(html)
            while self._bytes > self.max_bytes:
                _, oldest = self._html.popitem(last=False)
                self._bytes -= len(oldest)
        return html

    def clear(self) -> None:
        """Forget every fragment (after an erasure: no erased text stays in memory)."""
        self._html.clear()
        self._bytes = 0


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


def fragments_bytes(env: Environment, template: str, items: Sequence[Versioned]) -> bytes:
    """``template`` rendered for each item (as ``m``), UTF-8, from the fragment cache where it
    can be: the page then costs a lookup per unchanged item, not a template run."""
    cache: Fragments = env.globals["fragments"]  # type: ignore[assignment]
    compiled = env.get_template(template)
    return cache.join(items, lambda item: compiled.render(m=item))


#: Where a page's cached fragments go (:func:`split_at_fragments`): random per process, so no
#: content can forge it.
FRAGMENTS_SLOT: Final = Markup(f"<!--fragments-{secrets.token_hex(16)}-->")  # no user data


def split_at_fragments(html: str) -> tuple[bytes, bytes]:
    """A page rendered with :data:`FRAGMENTS_SLOT`, cut there, UTF-8 encoded."""
    head, slot, tail = html.partition(FRAGMENTS_SLOT)
    if not slot:
        raise ValueError("the template does not show its fragments")
    return head.encode(), tail.encode()


def environment() -> Environment:
    """The templates of the console, loaded from the package."""
    folder = resources.files(__package__).joinpath("templates")
    env = Environment(
        loader=FileSystemLoader(str(folder)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        finalize=_finalize,
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
    env.globals["fragments"] = Fragments()
    return env
