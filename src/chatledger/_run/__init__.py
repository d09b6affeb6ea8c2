"""The runtime both surfaces run on, hand-written: how an operation reaches the database.

- ``database_sync.py``: :class:`Database`, one transaction per operation on a synchronous
  engine, errors translated; the synchronous surface runs on it, and so does the asynchronous
  one (on worker threads, or inside a greenlet).
- ``database_async.py``: the asynchronous executors, ``NativeDatabase`` (an ``AsyncEngine``,
  one greenlet switch per operation) and ``ThreadedDatabase`` (``Database`` on worker threads).
- ``inline.py``: SQLite's short operations on the event loop thread (``ThreadedDatabase``).
- ``open_sync.py`` / ``open_async.py``: how each surface opens its database from a
  :class:`~chatledger.config.Config` or a caller's engine, using ``engine.py``.
- ``compat_sync.py`` / ``compat_async.py``: the names the asynchronous source imports from
  asyncio, and their synchronous twins. ``tools/generate_sync.py`` maps every ``*_async``
  module here to its ``*_sync`` twin.
- ``retry.py``: :class:`~chatledger.RetryPolicy`; ``translate.py``: the one boundary where
  SQLAlchemy and driver exceptions become chatledger errors.

Nothing here imports ``chatledger._async`` or ``chatledger._sync`` (tests/test_layout.py).
"""
