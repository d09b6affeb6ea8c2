"""How opening a store winds through chatledger: the calls from ``create_app`` to the engine.

    PYTHONPATH=src python -m bench.open_chain [URL]     # default: a SQLite file in a temp dir

Builds the HTTP app on ``URL`` and runs its start-up (which opens the store) with a profiler
on. Up to the first ``sqlalchemy.create_engine``, it prints every call that crosses from one
chatledger module to another (a *stop*), marks the ones into a module higher in the package
tree than the caller (a *climb*: ``chatledger.server.app`` -> ``chatledger.config``) and the
ones back into a module the chain had already left (a *return*). It also counts how often a
backend was resolved from a URL or a dialect name during the whole start-up (the SQLite inline
runner and the read pools have engines of their own).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import engine as sa_engine

from chatledger.server import create_app

#: Functions that resolve a backend from a URL or a dialect name.
RESOLVERS = frozenset({"backend_for", "backend_named", "_backend_of", "backend_of", "backend"})


def _module(frame: FrameType | None) -> str | None:
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name.startswith("chatledger"):
            return str(name)
        frame = frame.f_back
    return None


def trace(url: str) -> tuple[list[tuple[str, str, str, bool]], int]:
    """The stops (caller module, callee module, function, return) and the resolutions."""
    stops: list[tuple[str, str, str, bool]] = []
    left: set[str] = set()
    resolutions = 0
    engine_made = False
    stop_at = sa_engine.create_engine.__code__

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        nonlocal resolutions, engine_made
        if event != "call":
            return
        if frame.f_code is stop_at:
            engine_made = True
        callee = frame.f_globals.get("__name__", "")
        if not callee.startswith("chatledger"):
            return
        if frame.f_code.co_name in RESOLVERS:
            resolutions += 1
        caller = _module(frame.f_back)
        if engine_made or caller is None or caller == callee:
            return
        back = callee in left
        left.add(caller)
        stops.append((caller, callee, frame.f_code.co_name, back))

    async def start() -> None:
        app = create_app(url)
        async with app.router.lifespan_context(app):
            pass

    sys.setprofile(profile)
    try:
        asyncio.run(start())
    finally:
        sys.setprofile(None)
    return stops, resolutions


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{Path(scratch) / 'chain.db'}"
        stops, resolutions = trace(url)
    climbs = returns = 0
    for caller, callee, function, back in stops:
        climb = callee.count(".") < caller.count(".")
        climbs, returns = climbs + climb, returns + back
        marks = f"{'climb' if climb else '':5} {'return' if back else '':6}"
        print(f"{marks} {caller} -> {callee}.{function}")
    print(
        f"{len(stops)} stops, {climbs} climbs, {returns} returns, "
        f"backend resolved {resolutions} times"
    )


if __name__ == "__main__":
    main()
