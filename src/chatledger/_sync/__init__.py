"""The synchronous surface. ``ledger.py`` here is generated from ``../_async/ledger.py``."""
