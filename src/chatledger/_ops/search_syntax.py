"""chatledger's search query language, parsed once and rendered for each engine.

The language is the one search boxes teach: words (all must match), ``"a phrase"``, a prefix
``lisb*``, an excluded word or phrase ``-word``. Nothing else is syntax: ``AND``, ``NEAR(``,
``:``, ``^`` and the like are plain words or separators. A word is a run of letters and digits
(Unicode), lower-cased; a word that punctuation splits (``e-mail``) is searched as a phrase.

The same words are searched on every backend: a word shorter than :data:`MIN_TERM_CHARS` or in
:data:`STOP_WORDS` (InnoDB's minimum token size and default stop words, which MariaDB cannot
search) is ignored everywhere and reported in ``ignored``. Inside a phrase such words still
count: the phrase must appear as written.

Every rendered query is built from tokens of letters and digits only, so user text never
reaches an engine's syntax unescaped. No SQL here: the engines' renderings are used by
``_backends``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from .. import _validate as check
from ..errors import ValidationError

__all__ = [
    "MIN_TERM_CHARS",
    "QUERY_MAX_CHARS",
    "QUERY_MAX_TERMS",
    "STOP_WORDS",
    "Query",
    "Term",
    "parse",
    "snippet",
]

#: The longest query, in characters.
QUERY_MAX_CHARS: Final = 1_000
#: The most terms (words, prefixes, phrases, exclusions) in one query.
QUERY_MAX_TERMS: Final = 32
#: Words shorter than this are not searched (InnoDB's ``innodb_ft_min_token_size`` default).
MIN_TERM_CHARS: Final = 3
#: InnoDB's default full-text stop words, not searched on any backend (so results agree).
STOP_WORDS: Final = frozenset(
    [
        "a",
        "about",
        "an",
        "are",
        "as",
        "at",
        "be",
        "by",
        "com",
        "de",
        "en",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "la",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "who",
        "will",
        "with",
        "und",
        "www",
    ]
)

_TOKEN: Final = re.compile(r"[^\W_]+")
_LEXEME: Final = re.compile(r'-?"[^"]*"?|[^\s"]+')


@dataclass(frozen=True, slots=True)
class Term:
    """One term: ``tokens`` in order (one for a word or prefix, several for a phrase)."""

    tokens: tuple[str, ...]
    prefix: bool = False

    @property
    def is_phrase(self) -> bool:
        """Whether the term is several words that must appear in this order."""
        return len(self.tokens) > 1

    def indexed(self) -> tuple[str, ...]:
        """The tokens every engine indexes (long enough, not stop words)."""
        return tuple(token for token in self.tokens if _searchable(token))


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: terms that must match, terms that must not, and ignored words."""

    text: str
    required: tuple[Term, ...]
    excluded: tuple[Term, ...]
    ignored: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """Nothing left to search (every word was ignored): the result is empty."""
        return not self.required


def _searchable(token: str) -> bool:
    return len(token) >= MIN_TERM_CHARS and token not in STOP_WORDS


def parse(value: object, field_name: str = "query") -> Query:
    """Parse a query; errors name ``field_name``. Unbalanced quotes close at the end, a bare
    ``*`` or ``-`` is ignored; an empty query and a query of excluded words only are errors."""
    text = check.text(field_name, value, QUERY_MAX_CHARS)
    if not text.strip():
        raise ValidationError(field_name, "must not be empty")
    required: list[Term] = []
    excluded: list[Term] = []
    ignored: list[str] = []
    for lexeme in _LEXEME.findall(text):
        negated = lexeme.startswith("-") and len(lexeme) > 1
        body = lexeme[1:] if negated else lexeme
        quoted = body.startswith('"')
        prefix = not quoted and body.endswith("*")
        tokens = tuple(token.lower() for token in _TOKEN.findall(body))
        if not tokens:
            continue
        if prefix and len(tokens) > 1:
            # "e-ma*": the phrase "e ma*" is more than the engines agree on; search its words.
            prefix = False
        term = Term(tokens, prefix)
        if not term.is_phrase and not (
            _searchable(tokens[0]) or (prefix and len(tokens[0]) >= MIN_TERM_CHARS)
        ):
            ignored.append(lexeme)
            continue
        if term.is_phrase and not term.indexed():
            ignored.append(lexeme)
            continue
        (excluded if negated else required).append(term)
        if len(required) + len(excluded) > QUERY_MAX_TERMS:
            raise ValidationError(
                field_name, f"has more than {QUERY_MAX_TERMS} terms", limit=QUERY_MAX_TERMS
            )
    if excluded and not required and not ignored:
        raise ValidationError(field_name, "has only excluded words: add a word to find")
    return Query(text, tuple(required), tuple(excluded), tuple(ignored))


# -- renderings -------------------------------------------------------------------------------


def fts5(query: Query) -> str:
    """The query in SQLite FTS5 syntax: every token double-quoted."""

    def render(term: Term) -> str:
        quoted = '"' + " ".join(term.tokens) + '"'
        return quoted + " *" if term.prefix else quoted

    found = " AND ".join(render(term) for term in query.required)
    if not query.excluded:
        return found
    return f"({found}) NOT ({' OR '.join(render(term) for term in query.excluded)})"


def tsquery(query: Query) -> str:
    """The query in PostgreSQL ``to_tsquery`` syntax: every lexeme single-quoted."""

    def render(term: Term) -> str:
        lexemes = " <-> ".join(f"'{token}'" for token in term.tokens)
        if term.prefix:
            return lexemes + ":*"
        return f"({lexemes})" if term.is_phrase else lexemes

    parts = [render(term) for term in query.required]
    parts += [f"!{render(term)}" for term in query.excluded]
    return " & ".join(parts)


def boolean_mode(query: Query) -> str:
    """The indexed words in MariaDB ``MATCH ... AGAINST (... IN BOOLEAN MODE)`` syntax.
    Phrases are not sent (InnoDB drops stop words and short words inside them): their indexed
    words are required here and the phrase itself is checked by :func:`phrase_pattern`."""
    parts: list[str] = []
    for term in query.required:
        if term.prefix:
            parts.append(f"+{term.tokens[0]}*")
        else:
            parts.extend(f"+{token}" for token in term.indexed())
    parts.extend(
        f"-{term.tokens[0]}{'*' if term.prefix else ''}"
        for term in query.excluded
        if not term.is_phrase
    )
    return " ".join(parts)


def phrase_pattern(term: Term) -> str:
    """A case-insensitive regular expression (PCRE) matching the phrase as whole words."""
    return r"(?i)(?<![[:alnum:]])" + r"[^[:alnum:]]+".join(term.tokens) + r"(?![[:alnum:]])"


# -- snippets ----------------------------------------------------------------------------------

SNIPPET_WORDS: Final = 24


def snippet(
    text: str, query: Query, words: int = SNIPPET_WORDS
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """An excerpt of ``text`` around the first match and the ``(start, end)`` offsets of the
    matched words inside it (the same on every backend: computed here, not by the engine)."""
    matches = list(_TOKEN.finditer(text))
    if not matches:
        return text[:200], ()
    lowered = [match.group().lower() for match in matches]
    hits: set[int] = set()
    for term in query.required:
        first, size = term.tokens[0], len(term.tokens)
        if term.prefix:
            starts = [i for i, token in enumerate(lowered) if token.startswith(first)]
        else:
            starts = [i for i, token in enumerate(lowered) if token == first]
        for index in starts:
            if size == 1 or tuple(lowered[index : index + size]) == term.tokens:
                hits.update(range(index, index + size))
    first_hit = min(hits) if hits else 0
    start = max(0, first_hit - words // 4)
    end = min(len(matches), start + words)
    start = max(0, min(start, end - words))
    # The whole text at either end, so a snippet of a short message is the message.
    begin = 0 if start == 0 else matches[start].start()
    finish = len(text) if end == len(matches) else matches[end - 1].end()
    lead = "…" if start > 0 else ""
    tail = "…" if end < len(matches) else ""
    excerpt = lead + text[begin:finish] + tail
    shift = len(lead) - begin
    marks = tuple(
        (matches[i].start() + shift, matches[i].end() + shift)
        for i in sorted(hits)
        if start <= i < end
    )
    return excerpt, marks
