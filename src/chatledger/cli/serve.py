"""``chatledger serve``: the HTTP service (the ``server`` extra).

FastAPI and uvicorn are imported inside the command, so the core install does not need them.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import timedelta
from typing import Annotated, Any, Final

import typer

from ..errors import ConfigurationError, MissingDependencyError
from ._common import ConfigFile, Url, err, load_config, out

__all__ = ["serve", "worker_app"]

#: How ``serve --workers N`` hands its options to the worker processes.
_OPTIONS_ENV: Final = "CHATLEDGER_SERVE_OPTIONS"
#: uvicorn's HTTP protocol with its own 400s in the error envelope.
_PROTOCOL: Final = "chatledger.server.protocol:HTTPProtocol"
#: Seconds a stopping server waits for open responses (an event stream can last minutes;
#: its client resumes from Last-Event-ID on another server) before closing them.
SHUTDOWN_GRACE: Final = 10


def _settings(options: dict[str, Any]) -> Any:
    from ..server import ServerSettings

    return ServerSettings(
        max_body_bytes=options["max_body_bytes"],
        cors_origins=tuple(options["cors_origins"]),
        idempotency_running_timeout=timedelta(seconds=options["idempotency_timeout"]),
    )


def worker_app() -> Any:
    """The app of one ``serve --workers N`` worker process (a uvicorn factory)."""
    from ..server import create_app

    raw = os.environ.get(_OPTIONS_ENV)
    if raw is None:
        raise ConfigurationError(f"{_OPTIONS_ENV} is not set: start workers with chatledger serve")
    options = json.loads(raw)
    config = load_config(options["url"], options["config_file"])
    return create_app(config, settings=_settings(options))


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def serve(
    url: Url = None,
    config_file: ConfigFile = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, help="Largest request body in bytes (413 above it).")
    ] = 1_048_576,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow this origin (CORS); repeat for more."),
    ] = None,
    idempotency_timeout: Annotated[
        float,
        typer.Option(min=1, help="Seconds before an unfinished Idempotency-Key claim expires."),
    ] = 60.0,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the HTTP API (needs the ``server`` extra of chatledger).

    Opens the database (initialising an empty one), creates a first admin API key if the
    store has none and prints it once, then serves until interrupted.
    """
    try:
        import uvicorn

        from ..server import create_app
        from ..server.bootstrap import ensure_admin_key
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "server") from None
    from .._sync.ledger import Ledger

    config = load_config(url, config_file)
    options = {
        "url": url,
        "config_file": config_file,
        "max_body_bytes": max_body_bytes,
        "cors_origins": list(cors_origin or ()),
        "idempotency_timeout": idempotency_timeout,
    }
    settings = _settings(options)
    with Ledger(config=config) as ledger:
        created = ensure_admin_key(ledger)
    base = _base_url(host, port)
    out.print(f"chatledger serving {config.redacted_url()} on {base}", markup=False)
    if created is not None:
        out.print(
            "\nNo admin API key existed, so one was created. It is shown this once and stored "
            "nowhere; keep it now:\n",
            markup=False,
        )
        out.print(f"    {created.secret}\n", markup=False, highlight=False)
        out.print("Try it:\n", markup=False)
        out.print(
            f"    curl -H 'Authorization: Bearer {created.secret}' {base}/v1/me\n",
            markup=False,
            highlight=False,
        )
    out.print(f"API reference: {base}/docs   OpenAPI document: {base}/openapi.json", markup=False)
    out.print(f"Console: {base}/console (sign in with an API key)", markup=False)
    if workers == 1:
        uvicorn.run(
            create_app(config, settings=settings),
            host=host,
            port=port,
            log_level=log_level,
            http=_PROTOCOL,
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
        return
    os.environ[_OPTIONS_ENV] = json.dumps(options)
    # Every worker must sign console sessions with the same secret.
    from ..server.console._session import SECRET_ENV

    os.environ.setdefault(SECRET_ENV, secrets.token_hex(32))
    err.print(f"starting {workers} worker processes", markup=False)
    uvicorn.run(
        "chatledger.cli.serve:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        http=_PROTOCOL,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
