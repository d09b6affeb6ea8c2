# This file is generated from ../_async/__init__.py by tools/generate_sync.py: do not edit it.
# Edit the asynchronous source and run `make generate`.
"""The synchronous surface: :class:`Ledger` and its resources.

``chatledger._async`` is the single source of both surfaces: ``tools/generate_sync.py`` (``make
generate``) writes each of its modules into ``chatledger._sync``, which holds nothing else, and
CI fails when the two drift. Edit ``chatledger._async``, never ``chatledger._sync``.
"""
