"""Operations of the tokens area: plain functions of a SQLAlchemy ``Connection``."""

from __future__ import annotations

__all__: list[str] = []
