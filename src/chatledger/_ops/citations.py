"""Operations of the citations area: plain functions of a SQLAlchemy ``Connection``."""

from __future__ import annotations

__all__: list[str] = []
