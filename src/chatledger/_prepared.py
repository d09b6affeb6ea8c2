"""Hot statements, compiled once per dialect and run on the driver's cursor.

SQLAlchemy's ``Connection.execute`` pays, per statement, for an execution context, parameter
processing through the compiled cache, and a ``Result`` whose rows go through each column's
result processor. For the few statements a chat app runs on every request (read the last
messages, append one, list the sidebar) that work is most of chatledger's time on SQLite and a
large share on the servers. A :class:`Prepared` statement is still built with SQLAlchemy
constructs; it is compiled once per dialect, its bind values are converted by the same bind
processors SQLAlchemy would use, and it runs on the DBAPI cursor of the connection the
operation was given: in the caller's transaction, with driver errors raised exactly as
``Connection.execute`` raises them (wrapped, and the connection invalidated on a disconnect).

Rows come back as the driver's tuples; :func:`record_loader` turns them into records with
:func:`chatledger._types.result_loader`, the fast equivalent of the columns' result processing.

When the engine echoes SQL, or someone listens to its cursor-execute events (tracing,
instrumentation), statements go through ``Connection.exec_driver_sql`` instead, so logging and
events see them as usual.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, NoReturn, TypeVar

from sqlalchemy import Column, Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from ._types import bind_saver, result_loader

__all__ = ["Prepared", "RecordLoader", "record_loader", "record_maker"]

R = TypeVar("R")


class _Compiled:
    """One statement as one dialect runs it."""

    __slots__ = ("_from_records", "defaults", "names", "order", "processors", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if not isinstance(compiled, SQLCompiler):  # pragma: no cover  (DDL is never prepared)
            raise TypeError(f"cannot prepare {type(statement).__name__}")
        sql = compiled.string
        if "POSTCOMPILE" in sql:  # an expanding IN or a literal-execute parameter
            raise ValueError("a prepared statement cannot have post-compile parameters")
        self.sql = sql
        #: Parameter names in placeholder order (positional paramstyles), else None.
        self.order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        #: The values of parameters the caller does not pass (a LIMIT's OFFSET 0, literals).
        self.defaults: dict[str, Any] = {
            compiled.bind_names[bind]: bind.effective_value
            for bind in compiled.binds.values()
            if not bind.required
        }
        #: Every parameter the driver gets: in placeholder order when positional.
        self.names: tuple[str, ...] = (
            self.order if self.order is not None else tuple(compiled.bind_names.values())
        )
        self.processors: tuple[tuple[str, Callable[[Any], Any]], ...] = tuple(
            (name, process)
            for name, bind in compiled.binds.items()
            if name in self.names and (process := bind_saver(bind.type, dialect)) is not None
        )
        self._from_records: dict[tuple[type, bool], Callable[[Any], Any]] = {}

    def parameters(self, given: Mapping[str, Any]) -> Any:
        """The driver's parameters for the caller's values (by bind name)."""
        values = {**self.defaults, **given}
        for name, process in self.processors:
            values[name] = process(values[name])
        order = self.order
        if order is None:
            return values
        return tuple([values[name] for name in order])

    def from_record(self, record: type, *, as_tuple: bool = False) -> Callable[[Any], Any]:
        """A function that gives the driver's parameters for one ``record`` instance, whose
        fields are named like the statement's parameters: :meth:`parameters` of
        ``record_values(r)`` without the dictionaries (one generated function, built once).
        ``as_tuple``: a tuple in :attr:`names` order whatever the paramstyle (for ``COPY``)."""
        key = (record, as_tuple)
        found = self._from_records.get(key)
        if found is None:
            found = self._from_records[key] = self._record_function(record, as_tuple)
        return found

    def _record_function(self, record: type, as_tuple: bool) -> Callable[[Any], Any]:
        fields = {field.name for field in dataclasses.fields(record)}
        processors = dict(self.processors)
        namespace: dict[str, Any] = {}
        items: list[str] = []
        positional = as_tuple or self.order is not None
        for index, name in enumerate(self.names):
            if name in fields:
                value = f"r.{name}"
            elif name in self.defaults:
                namespace[f"_d{index}"] = self.defaults[name]
                value = f"_d{index}"
            else:
                raise ValueError(f"{record.__name__} has no field for parameter {name}")
            if name in processors:
                namespace[f"_p{index}"] = processors[name]
                value = f"_p{index}({value})"
            items.append(value if positional else f"{name!r}: {value}")
        body = f"({', '.join(items)},)" if positional else f"{{{', '.join(items)}}}"
        exec(f"def parameters(r):\n    return {body}", namespace)  # generated names only
        made: Callable[[Any], Any] = namespace["parameters"]
        return made


class Prepared:
    """A Core statement with named bind parameters, compiled once per dialect."""

    __slots__ = ("_by_dialect", "statement")

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement for ``dialect`` (compiled on first use)."""
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = _Compiled(self.statement, dialect)
        return found

    def _run(self, conn: Connection, given: Mapping[str, Any], want: str) -> Any:
        """Run on ``conn``; return the rows (``want="rows"``), the row count (``"count"``) or
        the row count and the driver's ``lastrowid`` (``"lastrowid"``)."""
        compiled = self.compiled(conn.dialect)
        try:
            params = compiled.parameters(given)
        except Exception as exc:
            _refused(conn, compiled, exc, dict(given))
        return self._driver_run(conn, compiled, params, want)

    def _driver_run(self, conn: Connection, compiled: _Compiled, params: Any, want: str) -> Any:
        sql = compiled.sql
        if _observed(conn):
            result = conn.exec_driver_sql(sql, params)
            if want == "rows":
                return [tuple(row) for row in result]
            if want == "count":
                return result.rowcount
            return result.rowcount, result.lastrowid
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            if want == "rows":
                return cursor.fetchall()
            if want == "count":
                return cursor.rowcount
            return cursor.rowcount, cursor.lastrowid
        except Exception as exc:
            # Wraps the driver's error as Connection.execute would (DBAPIError subclasses),
            # invalidates the connection on a disconnect, and fires handle_error events.
            conn._handle_dbapi_exception(exc, sql, params, cursor, None)
            raise  # not reached: the handler always raises
        finally:
            cursor.close()

    def _record_parameters(
        self, conn: Connection, records: Sequence[Any], *, as_tuple: bool = False
    ) -> tuple[_Compiled, list[Any]]:
        """The statement for ``conn`` and the driver's parameters of each record (all of one
        type; see :meth:`_Compiled.from_record`)."""
        compiled = self.compiled(conn.dialect)
        if not records:
            return compiled, []
        try:
            make = compiled.from_record(type(records[0]), as_tuple=as_tuple)
            return compiled, [make(record) for record in records]
        except Exception as exc:
            _refused(conn, compiled, exc, None)

    def execute_record(self, conn: Connection, record: Any) -> int:
        """Run a statement whose parameters are ``record``'s fields (an insert of one record);
        the number of rows it matched."""
        compiled, (params,) = self._record_parameters(conn, [record])
        count: int = self._driver_run(conn, compiled, params, "count")
        return count

    def record_rows_of(self, conn: Connection, record: Any) -> Sequence[Sequence[Any]]:
        """The rows of a statement whose parameters are ``record``'s fields (an insert of one
        record ``RETURNING`` what the database set)."""
        compiled, (params,) = self._record_parameters(conn, [record])
        rows: Sequence[Sequence[Any]] = self._driver_run(conn, compiled, params, "rows")
        return rows

    def execute_records(self, conn: Connection, records: Sequence[Any]) -> None:
        """Run the statement once per record of ``records`` (all of one type), its fields as
        the parameters, with the driver's ``executemany``."""
        if records:
            self._driver_many(conn, *self._record_parameters(conn, records))

    def record_rows(
        self, conn: Connection, records: Sequence[Any]
    ) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """The statement's parameter names and, per record, the driver's values in that order
        (for ``COPY``): what :meth:`execute_records` would send, as tuples."""
        compiled, rows = self._record_parameters(conn, records, as_tuple=True)
        return compiled.names, rows

    def _driver_many(self, conn: Connection, compiled: _Compiled, params: list[Any]) -> None:
        sql = compiled.sql
        if _observed(conn):
            conn.exec_driver_sql(sql, params)
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, params)
        except Exception as exc:
            conn._handle_dbapi_exception(exc, sql, params, cursor, None)
            raise  # not reached: the handler always raises
        finally:
            cursor.close()

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run the statement on ``conn`` and return every row, as the driver returns them."""
        found: Sequence[Sequence[Any]] = self._run(conn, params, "rows")
        return found

    def first_value(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or ``None`` when there is no row."""
        found = self._run(conn, params, "rows")
        return found[0][0] if found else None

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> int:
        """Run a statement that returns no rows; the number of rows it matched."""
        count: int = self._run(conn, params, "count")
        return count

    def execute_lastrowid(self, conn: Connection, params: Mapping[str, Any]) -> tuple[int, Any]:
        """Run a statement that returns no rows; its row count and the driver's
        ``lastrowid`` (MariaDB: the value of ``LAST_INSERT_ID(expr)`` set by the statement)."""
        done: tuple[int, Any] = self._run(conn, params, "lastrowid")
        return done


def _refused(
    conn: Connection, compiled: _Compiled, exc: Exception, given: dict[str, Any] | None
) -> NoReturn:
    """A bind processor refused a value: raise a StatementError, as ``Connection.execute``
    would (SQLAlchemy's handler wraps the error and fires ``handle_error`` events)."""
    conn._handle_dbapi_exception(exc, compiled.sql, given, None, None)
    raise exc  # not reached: the handler always raises


def _observed(conn: Connection) -> bool:
    """Whether SQL on ``conn`` is logged or listened to (then it takes SQLAlchemy's path).
    The engine's events are checked: a connection's joined dispatcher is built per access."""
    dispatch = conn.engine.dispatch
    return bool(conn._echo or dispatch.before_cursor_execute or dispatch.after_cursor_execute)


class RecordLoader(Generic[R]):
    """:func:`record_loader` for ``record`` and ``columns``, built once per dialect."""

    __slots__ = ("_by_dialect", "_columns", "_given", "_record")

    def __init__(
        self, record: type[R], columns: Sequence[Column[Any]], *, given: Sequence[str] = ()
    ) -> None:
        self._record = record
        self._columns = list(columns)
        self._given = tuple(given)
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, Callable[..., R]] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, dialect: Dialect) -> Callable[..., R]:
        """The loader for ``dialect``."""
        found = self._by_dialect.get(dialect)
        if found is None:
            found = self._by_dialect[dialect] = record_loader(
                self._record, self._columns, dialect, given=self._given
            )
        return found


def record_loader(
    record: type[R],
    columns: Sequence[Column[Any]],
    dialect: Dialect,
    *,
    given: Sequence[str] = (),
) -> Callable[..., R]:
    """A function ``load(row, *given_values)`` that builds ``record`` from a row selected with
    ``columns`` (the record's fields, in order, but those named in ``given``, whose values come
    as arguments), converting each value as SQLAlchemy's result processing would.

    The generated function unpacks the row once (its first columns, when the row carries
    more) and calls a column's converter only for a
    value that is not NULL (when the converter turns ``None`` into ``None``, as SQLAlchemy's
    result processors do): most message columns (metadata, usage details, hidden marks) are
    NULL, and a call costs more than the test.

    When ``record`` is a slotted dataclass with no ``__post_init__`` whose fields are all
    ``__init__`` arguments, the loader fills the slots of an instance of a plain class with
    the same slots (simple attribute stores) and then gives it ``record``'s class, a
    ``__class__`` assignment Python allows between classes of identical layout. That costs a
    quarter of a frozen dataclass's ``__init__`` (which stores each field through
    ``object.__setattr__``) and gives the object ``record(*values)`` gives.
    """
    fields = dataclasses.fields(record)  # type: ignore[arg-type]
    builder = _builder_of(record, fields)
    namespace: dict[str, Any] = {"_record": record, "_builder": builder, "_new": object.__new__}
    arguments = [f"_g{index}" for index in range(len(given))]
    values: list[str] = []
    column_index = 0
    for field in fields:
        if field.name in given:
            values.append(arguments[given.index(field.name)])
            continue
        column = columns[column_index]
        if column.name != field.name:
            raise ValueError(f"column {column.name} does not match field {field.name}")
        values.append(_converted(column, dialect, f"c{column_index}", namespace))
        column_index += 1
    if column_index != len(columns):
        raise ValueError("more columns than record fields")
    parameters = f"row{''.join(', ' + argument for argument in arguments)}"
    lines = [f"def load({parameters}):"]
    if columns:
        # Rows may carry more columns after the record's (a search's title and score).
        unpacked = "".join(f"c{index}, " for index in range(len(columns)))
        lines += [
            "    try:",
            f"        {unpacked}= row",
            "    except ValueError:",
            f"        {unpacked}= row[:{len(columns)}]",
        ]
    if builder is not None:
        lines.append("    obj = _new(_builder)")
        lines += [f"    obj.{f.name} = {value}" for f, value in zip(fields, values, strict=True)]
        lines += ["    obj.__class__ = _record", "    return obj"]
    else:
        lines.append(f"    return _record({', '.join(values)})")
    exec("\n".join(lines), namespace)  # the source names generated identifiers only
    load: Callable[..., R] = namespace["load"]
    return load


def _converted(column: Column[Any], dialect: Dialect, name: str, namespace: dict[str, Any]) -> str:
    """The expression that converts the driver's value ``name`` of ``column`` (its converter,
    if any, added to ``namespace``)."""
    loader = result_loader(column.type, dialect)
    if loader is None:
        return name
    namespace[f"_l{name}"] = loader
    try:
        keeps_null = loader(None) is None
    except Exception:  # a converter that cannot take None: always call it
        keeps_null = False
    if keeps_null:
        return f"None if {name} is None else _l{name}({name})"
    return f"_l{name}({name})"


def record_maker(record: type[R]) -> Callable[..., R]:
    """A function that takes ``record``'s fields (by position or name) and returns what
    ``record(...)`` returns, built as :func:`record_loader` builds records (``record``
    itself when it cannot be)."""
    fields = dataclasses.fields(record)  # type: ignore[arg-type]
    builder = _builder_of(record, fields)
    if builder is None:
        return record
    names = ", ".join(field.name for field in fields)
    namespace: dict[str, Any] = {"_record": record, "_builder": builder}
    fill = [f"def fill(obj, {names}):", *(f"    obj.{f.name} = {f.name}" for f in fields)]
    make = [f"def make({names}):", f"    obj = _builder({names})", "    obj.__class__ = _record"]
    exec("\n".join(fill), namespace)  # the source names the record's fields only
    exec("\n".join([*make, "    return obj"]), namespace)
    builder.__init__ = namespace["fill"]
    made: Callable[..., R] = namespace["make"]
    return made


def _builder_of(record: type[Any], fields: Sequence[dataclasses.Field[Any]]) -> type[Any] | None:
    """A plain class with ``record``'s slots whose instances can become ``record``s, or
    ``None`` when ``record`` is not such a dataclass."""
    slots = record.__dict__.get("__slots__")
    if (
        slots is None
        or hasattr(record, "__post_init__")
        or not all(field.init for field in fields)
        or record.__bases__ != (object,)
    ):
        return None
    builder = type(f"_{record.__name__}Builder", (), {"__slots__": tuple(slots)})
    probe: Any = object.__new__(builder)
    try:
        probe.__class__ = record
    except TypeError:  # a layout Python does not consider the same
        return None
    return builder
