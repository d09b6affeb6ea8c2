"""Feedback review and usage: what people rated and what the conversations cost."""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..._async._store import run_op
from ..._ops import reports as _reports
from ._base import View, admin_page, page

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: Ratings per review page.
RATINGS_PER_PAGE: Final = 25
#: How many users and conversations the usage page ranks.
TOP: Final = 10


@router.get("/console/feedback")
@page
async def feedback(request: Request, view: View) -> Response:
    """Ratings over time and the ratings themselves, thumbs-down first, with filters."""
    thumb = view.query_choice("thumb", ("up", "down"))
    category = view.query("category", 64)
    model = view.query("model", 200)
    since, until = view.query_window()
    number = view.query_int("page", 1, 1, 10_000)
    rated, more = await run_op(
        view.store,
        _reports.ratings,
        view.owner,
        thumb=thumb,
        category=category,
        model=model,
        since=since,
        until=until,
        limit=RATINGS_PER_PAGE,
        offset=(number - 1) * RATINGS_PER_PAGE,
    )
    days = await view.store.feedback.summary("day", since=since, until=until)
    models = await view.store.feedback.summary("model", since=since, until=until)
    chart = {
        "unit": "ratings",
        "labels": [day.key for day in days],
        "series": [
            {"label": "thumbs up", "data": [day.thumbs_up for day in days]},
            {"label": "thumbs down", "data": [day.thumbs_down for day in days]},
        ],
    }
    return view.render(
        "feedback.html",
        rated=rated,
        more=more,
        number=number,
        days=days,
        models=models,
        chart=chart,
        filters={"thumb": thumb, "category": category, "model": model},
    )


@router.get("/console/feedback/forms")
@admin_page
async def forms(request: Request, view: View) -> Response:
    """Product-feedback forms, newest first (admin: they belong to no user)."""
    listing = await view.ledger.product_feedback.page(
        limit=25, after=view.query("after", 512), before=view.query("before", 512)
    )
    return view.render("forms.html", page=listing)


@router.get("/console/usage")
@page
async def usage(request: Request, view: View) -> Response:
    """Tokens and cost by day and by model over a window (the last 30 days by default), the
    heaviest users and conversations (admin), and a user's balance and token ledger."""
    since, until = view.query_window(default_days=30)
    chosen = view.query_uuid("user") if view.admin else view.caller.user.id
    user = None if chosen is None else await view.user(chosen)
    store = view.store
    by_day = await store.usage.totals("day", user_id=chosen, since=since, until=until)
    by_model = await store.usage.totals("model", user_id=chosen, since=since, until=until)
    overall = await store.usage.overall(user_id=chosen, since=since, until=until)
    top_users = top_conversations = None
    if view.admin and chosen is None:
        top_users = await run_op(
            store, _reports.top_usage, "user", since=since, until=until, limit=TOP
        )
        top_conversations = await run_op(
            store, _reports.top_usage, "conversation", since=since, until=until, limit=TOP
        )
    owners = (await view.ledger.users.list(limit=200)).items if view.admin else []
    ledger_user = chosen or view.caller.user.id
    balance = await store.tokens.balance(ledger_user)
    history = await store.tokens.history(
        user_id=ledger_user, limit=25, after=view.query("after", 512)
    )
    chart = {
        "unit": "tokens",
        "labels": [day.key for day in by_day],
        "series": [
            {"label": "input tokens", "data": [day.input_tokens for day in by_day]},
            {"label": "output tokens", "data": [day.output_tokens for day in by_day]},
        ],
        "cost": [str(day.cost) for day in by_day],
    }
    model_chart = {
        "unit": "tokens",
        "labels": [row.key or "(none)" for row in by_model],
        "series": [
            {"label": "tokens", "data": [row.input_tokens + row.output_tokens for row in by_model]}
        ],
        "cost": [str(row.cost) for row in by_model],
    }
    return view.render(
        "usage.html",
        user=user,
        ledger_user=await view.user(ledger_user),
        since=since,
        until=until,
        by_day=by_day,
        by_model=by_model,
        overall=overall,
        top_users=top_users,
        top_conversations=top_conversations,
        balance=balance,
        history=history,
        chart=chart,
        model_chart=model_chart,
        owners=owners,
        names={user.id: user for user in owners},
    )
