"""Moving data in, out and between databases.

- :func:`copy_database` copies a whole chatledger database to another one, on any backend
  (typically an SQLite file into PostgreSQL or MariaDB): it backs an SQLite source up first,
  creates or upgrades the target's schema, copies each table in primary-key order in batches
  with the target's fast path (``COPY`` on PostgreSQL), resumes where an interrupted run
  stopped, and ends by comparing row counts and checksums of every table.
- :func:`export_data` writes everything, one user or one conversation as chatledger's own
  lossless JSON (or JSON lines), or a Markdown transcript, streaming batch by batch.
- :func:`import_data` reads chatledger's own export, a ChatGPT export (the ZIP or its
  ``conversations.json``), or the
  visitors and feedback files of the visitor-registry apps. Importing the same file twice
  writes nothing the second time.

The command line (``chatledger copy | export | import``) is a thin layer over these.

The package's modules are private: ``_copy`` (copy and compare), ``_export`` (JSON, JSON
lines, Markdown), ``_import`` (format detection and the entry), ``_native`` (chatledger's
own export read back), ``_foreign`` (ChatGPT, the visitor-registry apps), ``_importing``
(what every import format shares) and ``_common`` (batches, progress, naming a user). Every
public name is re-exported here and named ``chatledger.transfer.<name>``.
"""

from __future__ import annotations

import inspect

from .. import _as_public
from ._common import DEFAULT_BATCH_SIZE, Progress, resolve_user
from ._copy import CopyReport, TableCheck, backup_sqlite, compare_databases, copy_database
from ._export import EXPORT_FORMATS, ExportFormat, ExportReport, export_data, table_counts
from ._import import IMPORT_FORMATS, ImportFormat, detect_format, import_data
from ._importing import ImportReport

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXPORT_FORMATS",
    "IMPORT_FORMATS",
    "CopyReport",
    "ExportFormat",
    "ExportReport",
    "ImportFormat",
    "ImportReport",
    "Progress",
    "TableCheck",
    "backup_sqlite",
    "compare_databases",
    "copy_database",
    "detect_format",
    "export_data",
    "import_data",
    "resolve_user",
    "table_counts",
]

for _name in __all__:
    _value = globals()[_name]
    if inspect.isfunction(_value):
        _value.__module__ = __name__
    else:
        _as_public(_value, __name__)
del _name, _value
