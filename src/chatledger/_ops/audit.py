"""Operations of the audit area: plain functions of a SQLAlchemy ``Connection``."""

from __future__ import annotations

__all__: list[str] = []
