"""``chatledger serve``: the HTTP service (the ``server`` extra)."""

from __future__ import annotations

from ._common import ConfigFile, Url

__all__ = ["serve"]


def serve(url: Url = None, config_file: ConfigFile = None) -> None:
    """Serve the HTTP API (needs ``pip install 'chatledger[server]'``)."""
    raise NotImplementedError("issue 6: the HTTP service")
