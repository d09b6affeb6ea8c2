"""Autogenerate a new Alembic revision from the models.

    python tools/new_revision.py "add feedback"

It migrates a scratch SQLite database to the current head, compares it with the models, and
writes ``src/chatledger/migrations/versions/NNNN_<slug>.py`` with the next number as its id.
Read and tidy the result: autogenerate does not see renames, CHECK constraints or data moves.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine

from chatledger import migrate

VERSIONS = Path(migrate.__file__).parent / "migrations" / "versions"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    message = sys.argv[1]
    numbers = [
        int(m.group(1)) for p in VERSIONS.glob("*.py") if (m := re.match(r"(\d{4})_", p.name))
    ]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{scratch}/scratch.db")
        with engine.connect() as conn:
            if numbers:
                migrate.upgrade(conn)
                conn.commit()
            config = migrate._alembic_config(conn)
            config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
            command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
        engine.dispose()
    written = next(VERSIONS.glob(f"{rev_id}_*.py"))
    print(f"wrote {written} ({slug})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
