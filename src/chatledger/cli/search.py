"""``chatledger search``: full-text search over messages (or conversation titles)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ._common import AsJson, ConfigFile, Url, emit_json, open_ledger, out

if TYPE_CHECKING:
    from ..records import SearchPage

__all__ = ["search"]


def _marked(snippet: str, highlights: tuple[tuple[int, int], ...]) -> Text:
    """The snippet with its matched words in bold (the text is never read as markup)."""
    text = Text(snippet)
    for start, end in highlights:
        text.stylize("bold", start, end)
    return text


def search(
    query: Annotated[str, typer.Argument(help='Words, "phrases", prefixes (lisb*), -excluded.')],
    user: Annotated[
        str | None, typer.Option(help="Only this user's conversations (id or external id).")
    ] = None,
    conversation: Annotated[str | None, typer.Option(help="Only this conversation (id).")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Only messages of this role.")] = None,
    branch: Annotated[
        str,
        typer.Option(help="all (every branch) or active (only each conversation's active path)."),
    ] = "all",
    titles: Annotated[
        bool, typer.Option("--titles", help="Search conversation titles instead of messages.")
    ] = False,
    order: Annotated[str, typer.Option(help="relevance, newest or oldest.")] = "relevance",
    limit: Annotated[int, typer.Option(help="How many results, 1 to 100.")] = 20,
    url: Url = None,
    config_file: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Search messages (or, with --titles, conversation titles) with the database's full-text
    index; the matched words are highlighted."""
    with open_ledger(url, config_file) as ledger:
        from .. import transfer  # the library loads with the command, not with --help

        store = ledger if user is None else ledger.as_user(transfer.resolve_user(ledger, user))
        found: SearchPage[Any]
        rows: list[tuple[str, str, str, Any]]
        if titles:
            found = store.search.conversations(query, order=order, limit=limit)  # type: ignore[arg-type]
            rows = [(str(hit.conversation.id), "", "", hit) for hit in found]
        else:
            found = store.search.messages(
                query,
                conversation_id=conversation,
                role=role or None,  # type: ignore[arg-type]
                branch=branch,  # type: ignore[arg-type]
                order=order,  # type: ignore[arg-type]
                limit=limit,
            )
            rows = [
                (str(hit.message.conversation_id), str(hit.message.seq), hit.message.role, hit)
                for hit in found
            ]
        if as_json:
            emit_json([dataclasses.asdict(hit) for *_, hit in rows])
            return
        table = Table("conversation", "seq", "role", "snippet", title=f"matching {query!r}")
        for conversation_id, seq, who, hit in rows:
            table.add_row(conversation_id, seq, who, _marked(hit.snippet, hit.highlights))
        out.print(table)
        if found.ignored:
            out.print(f"ignored (too short or stop words): {' '.join(found.ignored)}")
