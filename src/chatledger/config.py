"""Where chatledger's database settings come from.

:meth:`Config.load` resolves every setting from, in order of precedence, explicit arguments,
environment variables, an optional YAML file and built-in defaults, and records in
:attr:`Config.sources` where each value came from. ``docs/configuration.md`` has the full table.
Passwords never appear in ``repr``, in exception messages or in log lines.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ._backends import BACKEND_NAMES, BackendName, backend_for, backend_named
from .errors import ConfigurationError

__all__ = ["Config"]

logger = logging.getLogger(__name__)

_PASSWORD_VARS = {"postgresql": ("DB_PASSWORD",), "mariadb": ("MARIADB_PASSWORD", "DB_PASSWORD")}
_MARIADB_PARTS = ("MARIADB_HOST", "MARIADB_DATABASE", "MARIADB_USER", "MARIADB_PASSWORD")
_DB_PARTS = ("DB_HOST", "DB_NAME", "DB_USER", "DB_PORT", "DB_PASSWORD")
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
_BOOL, _COUNT, _SECONDS = "True or False", "a non-negative integer", "a non-negative number"
#: Each setting but url: the env variables read for it, first set wins, and what it accepts.
_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "echo": (("DB_ECHO", "SQL_ECHO", "DATABASE_ECHO"), _BOOL),
    "pool_size": (("DATABASE_POOL_SIZE", "DB_POOL_SIZE"), _COUNT),
    "max_overflow": (("DATABASE_MAX_OVERFLOW", "DB_MAX_OVERFLOW"), _COUNT),
    "pool_timeout": (("DATABASE_POOL_TIMEOUT",), _SECONDS),
    "pool_recycle": (("DATABASE_POOL_RECYCLE",), _COUNT),
    "sqlite_synchronous": (("CHATLEDGER_SQLITE_SYNCHRONOUS",), "NORMAL or FULL"),
    "sqlite_busy_timeout": ((), _SECONDS),
    "sqlite_inline_budget": ((), _SECONDS),
    "auto_upgrade": (("CHATLEDGER_AUTO_UPGRADE",), _BOOL),
    "open_timeout": (("DATABASE_TIMEOUT",), _SECONDS),
    "open_retries": (("DATABASE_INIT_RETRY_COUNT",), _COUNT),
    "open_retry_delay": (("DATABASE_INIT_RETRY_DELAY_MS",), _SECONDS),
    "pooler": (("CHATLEDGER_POOLER",), _BOOL),
    "use_database": (("CHATLEDGER_USE_DATABASE", "USE_DATABASE"), _BOOL),
    "replicas": (("CHATLEDGER_REPLICA_URLS",), "a list of database URLs"),
    "replica_max_lag": (("CHATLEDGER_REPLICA_MAX_LAG",), _SECONDS),
    "replica_wait": (("CHATLEDGER_REPLICA_WAIT",), _SECONDS),
}
#: The settings that are flags (True or False).
_FLAGS = frozenset({"echo", "auto_upgrade", "pooler", "use_database"})
#: Settings that are a number of seconds (the others that are numbers count things).
_FLOATS = frozenset(
    {
        "pool_timeout",
        "sqlite_busy_timeout",
        "sqlite_inline_budget",
        "open_timeout",
        "open_retry_delay",
        "replica_max_lag",
        "replica_wait",
    }
)
#: Settings that cannot be None.
_REQUIRED = frozenset(
    {
        "sqlite_busy_timeout",
        "sqlite_inline_budget",
        "open_timeout",
        "open_retries",
        "open_retry_delay",
        "replicas",
        "replica_max_lag",
        "replica_wait",
    }
)
_PYDANTIC_MESSAGES = {"extra_forbidden": "unknown key", "model_type": "must be a mapping"}
_Count = Annotated[int, Field(strict=True, ge=0)]
_Seconds = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SqliteSection(_Section):
    path: str | None = None
    synchronous: Literal["NORMAL", "FULL"] | None = None
    busy_timeout: _Seconds | None = None
    inline_budget: _Seconds | None = None

    @field_validator("synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class _ServerSection(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)
    host: str | None = None
    port: Annotated[int, Field(strict=True, ge=1, le=65535)] | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None
    pool_size: _Count | None = None
    max_overflow: _Count | None = None
    pool_timeout: _Seconds | None = None
    pool_recycle: _Count | None = None


class _DatabaseSection(_Section):
    type: BackendName | None = None
    url: str | None = None
    echo: bool | None = None
    auto_upgrade: bool | None = None
    open_timeout: _Seconds | None = None
    open_retries: _Count | None = None
    open_retry_delay: _Seconds | None = None
    pooler: bool | None = None
    use_database: bool | None = None
    replicas: list[str] | None = None
    replica_max_lag: _Seconds | None = None
    replica_wait: _Seconds | None = None
    sqlite: _SqliteSection | None = None
    postgresql: _ServerSection | None = None
    mariadb: _ServerSection | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        return BACKEND_NAMES.get(value.strip().lower(), value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True, repr=False)
class Config:
    """chatledger's resolved database settings. Build one with :meth:`load`."""

    url: URL
    echo: bool = False
    pool_size: int | None = None
    max_overflow: int | None = None
    pool_timeout: float | None = None
    pool_recycle: int | None = None
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    sqlite_busy_timeout: float = 10.0
    sqlite_inline_budget: float = 0.002
    auto_upgrade: bool = False
    #: Seconds the first open keeps retrying a database it cannot reach (0: the retry
    #: policy's few attempts only). See docs/configuration.md "Waiting for the database".
    open_timeout: float = 0.0
    #: Retries of the first open at least, whatever the timeout.
    open_retries: int = 0
    #: Seconds before the first retry of the first open; it doubles each time (up to 5 s).
    open_retry_delay: float = 0.1
    #: A transaction-mode connection pooler (PgBouncer) sits in front of PostgreSQL: no
    #: server-side prepared statements, no session state outside what the pooler tracks.
    pooler: bool = False
    #: ``False`` (``USE_DATABASE=false``): no database server or file at all; the store lives
    #: in this process's memory (an in-memory SQLite database, gone when it closes) and the
    #: :class:`~chatledger.AuditLogger` writes its file only. The app's code stays the same.
    use_database: bool = True
    #: Read replicas of the primary (``url``): reads outside transactions go to a healthy
    #: one, writes and transactions to the primary. See docs/scale-out.md "Read replicas".
    replicas: tuple[URL, ...] = ()
    #: Seconds a replica may lag behind before reads skip it.
    replica_max_lag: float = 10.0
    #: Seconds a read waits for a replica to replay a position it must see (read-your-writes)
    #: before it is served by the primary instead.
    replica_wait: float = 0.5
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.url, URL):
            raise ConfigurationError("url: expected a sqlalchemy.engine.URL")
        backend_for(self.url, "url")
        for name in _SETTINGS:
            object.__setattr__(self, name, _check(name, getattr(self, name)))
        primary = backend_for(self.url, "url")
        for index, replica in enumerate(self.replicas):
            where = f"replicas[{index}]"
            if backend_for(replica, where).name != primary.name:
                raise ConfigurationError(
                    f"{where}: a {backend_for(replica, where).name} URL, but the primary is "
                    f"{primary.name}"
                )
            if primary.name == "sqlite":
                raise ConfigurationError(
                    f"{where}: SQLite has no replica URLs; on LiteFS every node reads its own "
                    "copy (docs/scale-out.md)"
                )

    @property
    def backend(self) -> BackendName:
        """The backend family: ``"sqlite"``, ``"postgresql"`` or ``"mariadb"`` (also MySQL)."""
        return backend_for(self.url, "url").name

    def redacted_url(self) -> str:
        """The URL as a string with the password replaced by ``***``."""
        return self.url.render_as_string(hide_password=True)

    def redacted_replicas(self) -> list[str]:
        """The replica URLs as strings with their passwords replaced by ``***``."""
        return [url.render_as_string(hide_password=True) for url in self.replicas]

    def __repr__(self) -> str:
        settings = ", ".join(
            f"{name}={self.redacted_replicas() if name == 'replicas' else getattr(self, name)!r}"
            for name in _SETTINGS
        )
        return f"Config(url={self.redacted_url()!r}, {settings})"

    @classmethod
    def load(
        cls,
        url: str | URL | None = None,
        *,
        config_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        """Resolve every setting: arguments, then ``environ`` (default ``os.environ``), then the
        YAML file (``config_file``, else ``$CHATLEDGER_CONFIG``), then the defaults.

        ``overrides`` set any field but ``url`` and ``sources``; an override of ``None`` counts
        as not given. Raises :class:`ConfigurationError` on any invalid or unknown setting.
        """
        env: Mapping[str, str] = os.environ if environ is None else environ
        if unknown := sorted(set(overrides) - set(_SETTINGS)):
            accepted = ", ".join(_SETTINGS)
            raise ConfigurationError(f"unknown setting(s) {', '.join(unknown)}; use {accepted}")
        db, path = _read_file(config_file, env)
        sources: dict[str, str]
        if url is not None:
            resolved, sources = _parse_url(url, "argument url"), {"url": "argument"}
        else:
            resolved, sources = _resolve_url(env, db, path)
        values: dict[str, Any] = {"url": resolved}
        backend = backend_for(resolved, "argument url" if url is not None else sources["url"]).name
        from_file: dict[str, object] = {}
        if db is not None:
            lite = db.sqlite or _SqliteSection()
            server = {"postgresql": db.postgresql, "mariadb": db.mariadb}.get(backend)
            from_file = {
                "echo": db.echo,
                "auto_upgrade": db.auto_upgrade,
                "open_timeout": db.open_timeout,
                "open_retries": db.open_retries,
                "open_retry_delay": db.open_retry_delay,
                "pooler": db.pooler,
                "use_database": db.use_database,
                "replicas": db.replicas,
                "replica_max_lag": db.replica_max_lag,
                "replica_wait": db.replica_wait,
                "sqlite_synchronous": lite.synchronous,
                "sqlite_busy_timeout": lite.busy_timeout,
                "sqlite_inline_budget": lite.inline_budget,
            }
            if server is not None:
                for name in ("pool_size", "max_overflow", "pool_timeout", "pool_recycle"):
                    from_file[name] = getattr(server, name)
        for name, (variables, _) in _SETTINGS.items():
            if overrides.get(name) is not None:
                values[name], sources[name] = overrides[name], "argument"
            elif (found := _setting_from_env(name, variables, env)) is not None:
                values[name], sources[name] = found[0], f"env {found[1]}"
            elif from_file.get(name) is not None:
                values[name], sources[name] = from_file[name], f"file {path}"
            else:
                sources[name] = "default"
        if values.get("use_database") is False:
            # No database: the store lives in this process's memory, whatever URL is set.
            values["url"] = URL.create("sqlite", database=":memory:")
            sources["url"] = f"in memory ({sources['use_database']}: use_database off)"
            for part in [name for name in sources if name.startswith("url.")]:
                del sources[part]
        config = cls(**values, sources=MappingProxyType(sources))
        logger.debug("loaded %r from %s", config, sources)
        return config


def _check(name: str, value: object) -> object:
    """Validate one field given as a Python value; return it normalized."""
    ok = False
    if name == "replicas":
        return _replica_urls(value)
    if name in _FLAGS:
        ok = isinstance(value, bool)
    elif name == "sqlite_synchronous":
        value = value.upper() if isinstance(value, str) else value
        ok = value in ("NORMAL", "FULL")
    elif value is None:
        ok = name not in _REQUIRED
    elif isinstance(value, bool):
        ok = False
    elif name in _FLOATS and isinstance(value, int | float):
        value = float(value)
        ok = math.isfinite(value) and value >= 0
    elif isinstance(value, int):
        ok = value >= 0
    if not ok:
        raise ConfigurationError(f"{name}: expected {_SETTINGS[name][1]}, got {value!r}")
    return value


def _replica_urls(value: object, source: str = "replicas") -> tuple[URL, ...]:
    """Replica URLs given as one URL, a string of URLs separated by commas or spaces, or a
    sequence of strings/URLs; each parsed as the primary's URL is."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    elif isinstance(value, URL):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"{source}: expected a list of database URLs")
    return tuple(_parse_url(item, f"{source}[{index}]") for index, item in enumerate(value))


def _get(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, or None when it is unset or blank."""
    value = env.get(name)
    return value if value is not None and value.strip() else None


def _setting_from_env(
    name: str, variables: tuple[str, ...], env: Mapping[str, str]
) -> tuple[object, str] | None:
    """The first set variable's parsed value for a non-URL setting, with its name."""
    for var in variables:
        raw = env.get(var) if name in _FLAGS else _get(env, var)
        if raw is None:
            continue
        text = raw.strip()
        value: object = None
        if name == "replicas":
            return _replica_urls(text.replace(",", " ").split(), f"env {var}"), var
        if name in _FLAGS:
            value = True if text.lower() in _TRUE else False if text.lower() in _FALSE else None
        elif name == "sqlite_synchronous":
            value = text.upper() if text.upper() in ("NORMAL", "FULL") else None
        else:
            try:
                number = float(text) if name in _FLOATS else int(text)
                if var.endswith("_MS"):
                    number /= 1000
                value = number if math.isfinite(number) and number >= 0 else None
            except ValueError:
                pass
        if value is None:
            expected = _SETTINGS[name][1].replace(_BOOL, "1/true/yes/on or 0/false/no/off")
            raise ConfigurationError(f"env {var}: expected {expected}, got {raw!r}")
        return value, var
    return None


def _parse_url(raw: str | URL, source: str) -> URL:
    """Parse and normalize a URL without ever echoing it (it may hold a password)."""
    if isinstance(raw, URL):
        url = raw
    elif isinstance(raw, str):
        if raw.split("?")[0].count("@") > 1 and not raw.strip().startswith("sqlite"):
            raise ConfigurationError(
                f"{source}: the database URL has more than one '@'; percent-encode special "
                "characters in the user name and password (@ as %40, / as %2F, : as %3A)"
            )
        try:
            url = make_url(raw.strip())
        except (ArgumentError, ValueError):
            raise ConfigurationError(
                f"{source}: not a valid database URL "
                "(expected e.g. postgresql+psycopg://user:password@host:5432/name)"
            ) from None
    else:
        raise ConfigurationError(f"{source}: expected a string or sqlalchemy.engine.URL")
    dialect, _, driver = url.drivername.partition("+")
    dialect = "postgresql" if dialect == "postgres" else dialect
    if not driver and (family := BACKEND_NAMES.get(dialect)) is not None:
        driver = backend_named(family).default_driver
    drivername = f"{dialect}+{driver}" if driver else dialect
    return url if drivername == url.drivername else url.set(drivername=drivername)


def _sqlite_url(raw: str, base: Path) -> URL:
    """A SQLite URL for ``raw``, resolved against ``base`` when relative."""
    if raw.strip() == ":memory:":
        return URL.create("sqlite", database=":memory:")
    path = Path(raw.strip()).expanduser()
    return URL.create("sqlite", database=os.path.normpath(base / path))


def _default() -> tuple[URL, str]:
    """The default: a SQLite file in the user's data directory (not created here)."""
    path = Path(platformdirs.user_data_dir("chatledger")) / "chatledger.db"
    return URL.create("sqlite", database=str(path)), "default"


def _read_file(
    config_file: str | os.PathLike[str] | None, env: Mapping[str, str]
) -> tuple[_DatabaseSection | None, Path | None]:
    """Read and validate the YAML file's ``database`` section, if a file is named."""
    raw = os.fspath(config_file) if config_file is not None else _get(env, "CHATLEDGER_CONFIG")
    if raw is None:
        return None, None
    path = Path(os.path.abspath(os.path.expanduser(raw.strip())))
    where = f"config file {path}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(f"{where} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"{where} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        detail = ""
        if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
            mark = exc.problem_mark
            detail = f" at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        raise ConfigurationError(f"{where} is not valid YAML{detail}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigurationError(f"{where}: the top level must be a mapping")
    section = (data or {}).get("database")
    try:
        db = _DatabaseSection.model_validate({} if section is None else section)
    except PydanticValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            key = ".".join(["database", *(str(part) for part in err["loc"])])
            problems.append(f"{key}: {_PYDANTIC_MESSAGES.get(err['type'], err['msg'])}")
        raise ConfigurationError(f"{where}: {'; '.join(problems)}") from None
    logger.debug("read database settings from %s", where)
    return db, path


# --------------------------------------------------------------------------------------------
# The database URL, field by field


#: The server backends, whose URLs are made of parts.
_SERVERS: tuple[BackendName, ...] = ("postgresql", "mariadb")


def _drivername(kind: BackendName) -> str:
    """The SQLAlchemy driver name chatledger uses by default for ``kind``."""
    backend = backend_named(kind)
    return (
        f"{backend.dialect}+{backend.default_driver}" if backend.default_driver else backend.dialect
    )


#: The URL's parts, each with the variables read for it per backend (first set wins).
_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "host": {"mariadb": ("MARIADB_HOST", "DB_HOST"), "postgresql": ("DB_HOST",)},
    "port": {"mariadb": ("MARIADB_PORT", "DB_PORT"), "postgresql": ("DB_PORT",)},
    "database": {"mariadb": ("MARIADB_DATABASE", "DB_NAME"), "postgresql": ("DB_NAME",)},
    "username": {"mariadb": ("MARIADB_USER", "DB_USER"), "postgresql": ("DB_USER",)},
    "password": {"mariadb": ("MARIADB_PASSWORD", "DB_PASSWORD"), "postgresql": ("DB_PASSWORD",)},
}
_PART_DEFAULTS: dict[str, Mapping[str, object]] = {
    "host": {"mariadb": "localhost", "postgresql": "localhost"},
    "port": {name: backend_named(name).default_port for name in _SERVERS},
    "database": {"mariadb": "chatledger", "postgresql": "chatledger"},
    "username": {name: backend_named(name).default_user for name in _SERVERS},
    "password": {},
}


def _full_url_from_env(env: Mapping[str, str]) -> tuple[URL, dict[str, str]] | None:
    """A whole URL from the environment (CHATLEDGER_DATABASE_URL, DATABASE_URL, MARIADB_URI):
    it names the database entirely; only a missing password is filled from the environment."""
    kind = _type_from_env(env)
    names = ["CHATLEDGER_DATABASE_URL", "DATABASE_URL"]
    if kind in (None, "mariadb"):
        names.append("MARIADB_URI")
    for var in names:
        if (raw := _get(env, var)) is None:
            continue
        url, sources = _parse_url(raw, f"env {var}"), {"url": f"env {var}"}
        backend = BACKEND_NAMES.get(url.get_backend_name())
        if url.password is None and url.username and backend in _PARTS["password"]:
            for password_var in _PARTS["password"][backend]:
                if (password := _get(env, password_var)) is not None:
                    url = url.set(password=password)
                    sources = {"url": f"env {var}, {password_var}"}
                    sources["url.password"] = f"env {password_var}"
                    break
        return url, sources
    return None


def _type_from_env(env: Mapping[str, str]) -> BackendName | None:
    """DATABASE_TYPE's backend, or None when it is unset."""
    raw = _get(env, "DATABASE_TYPE")
    if raw is None:
        return None
    kind = BACKEND_NAMES.get(raw.strip().lower())
    if kind is None:
        raise ConfigurationError(
            "env DATABASE_TYPE: expected sqlite, postgresql (or postgres) or mariadb "
            f"(or mysql), got {raw!r}"
        )
    return kind


def _file_kind(db: _DatabaseSection, path: Path) -> BackendName | None:
    """The backend the file names (``database.type``, its URL's, or its one section)."""
    source = f"file {path}"
    if db.url is not None:
        backend = backend_for(_parse_url(db.url, f"{source} (database.url)"), source).name
        if db.type is not None and backend != db.type:
            raise ConfigurationError(
                f"{source}: database.url is a {backend} URL but database.type is {db.type}"
            )
        return backend
    if db.type is not None:
        return db.type
    found = ["sqlite"] if db.sqlite is not None and db.sqlite.path else []
    for name, sec in (("postgresql", db.postgresql), ("mariadb", db.mariadb)):
        if sec is not None and sec.model_fields_set & {"host", "port", "database", "user"}:
            found.append(name)
    if len(found) > 1:
        raise ConfigurationError(
            f"{source}: database.type is required when several backends are configured "
            f"({', '.join(found)})"
        )
    return BACKEND_NAMES[found[0]] if found else None


def _file_url(db: _DatabaseSection, path: Path, kind: BackendName) -> URL | None:
    """What the file says of a ``kind`` database: its ``database.url`` if of that backend,
    else the parts in that backend's section (None for the parts it leaves out)."""
    if db.url is not None:
        url = _parse_url(db.url, f"file {path} (database.url)")
        if BACKEND_NAMES.get(url.get_backend_name()) == kind:
            return url
    if kind == "sqlite":
        lite = db.sqlite.path if db.sqlite is not None else None
        return _sqlite_url(lite, path.parent) if lite else None
    sec = (db.postgresql if kind == "postgresql" else db.mariadb) or _ServerSection()
    return URL.create(
        _drivername(kind),
        username=sec.user or None,
        password=sec.password or None,
        host=sec.host or None,
        port=sec.port,
        database=sec.database or None,
    )


def _kind_of(
    env: Mapping[str, str], file_kind: BackendName | None
) -> tuple[BackendName | None, str | None]:
    """The backend to use and the variable that chose it (None: the file or a default).
    DATABASE_TYPE first; then MARIADB_* variables; then the file; then DB_* parts
    (PostgreSQL), then DB_PATH (SQLite). Passwords alone never choose: they fill in."""
    if (kind := _type_from_env(env)) is not None:
        return kind, "DATABASE_TYPE"

    def named(variables: tuple[str, ...]) -> bool:
        return any(_get(env, var) for var in variables if not var.endswith("_PASSWORD"))

    if named((*_MARIADB_PARTS, "MARIADB_PORT")):
        return "mariadb", None
    if file_kind is not None:
        return file_kind, None
    if named(_DB_PARTS) or _get(env, "DB_PASSWORD"):
        return "postgresql", None
    if _get(env, "MARIADB_PASSWORD"):
        return "mariadb", None
    if _get(env, "DB_PATH") or _get(env, "LITEFS_DB_PATH"):
        return "sqlite", None
    return None, None


def _resolve_url(
    env: Mapping[str, str], db: _DatabaseSection | None, path: Path | None
) -> tuple[URL, dict[str, str]]:
    """The database URL with each part resolved on its own: environment over file over
    default. Returns it with ``sources``: ``url`` (every source that contributed, as one
    line) and ``url.<part>`` for each part."""
    if (full := _full_url_from_env(env)) is not None:
        return full
    file_kind = _file_kind(db, path) if db is not None and path is not None else None
    kind, kind_var = _kind_of(env, file_kind)
    if kind is None:
        url, source = _default()
        return url, {"url": source, "url.database": source}
    file_source = f"file {path}"
    file_url = _file_url(db, path, kind) if db is not None and path is not None else None
    parts: dict[str, object] = {}
    sources: dict[str, str] = {}
    if kind == "sqlite":
        if (raw := _get(env, "DB_PATH")) is not None:
            url, sources["database"] = _sqlite_url(raw, Path.cwd()), "DB_PATH"
        elif (raw := _get(env, "LITEFS_DB_PATH")) is not None:  # seed 000's LiteFS setup
            url, sources["database"] = _sqlite_url(raw, Path.cwd()), "LITEFS_DB_PATH"
        elif file_url is not None:
            url, sources["database"] = file_url, file_source
        else:
            url, sources["database"] = _default()[0], "default"
    else:
        for part, variables in _PARTS.items():
            for var in variables[kind]:
                if (raw := _get(env, var)) is not None:
                    parts[part] = raw if part == "password" else raw.strip()
                    sources[part] = var
                    break
            else:
                value = getattr(file_url, part) if file_url is not None else None
                if value is not None:
                    parts[part], sources[part] = value, file_source
                elif (default := _PART_DEFAULTS[part].get(kind)) is not None:
                    parts[part], sources[part] = default, "default"
        if sources.get("port", "").endswith("_PORT"):
            parts["port"] = _port(str(parts["port"]), sources["port"])
        drivername = file_url.drivername if file_url is not None else _drivername(kind)
        query = file_url.query if file_url is not None else {}
        url = URL.create(drivername, query=query, **parts)  # type: ignore[arg-type]
    return url, _url_sources(kind_var, file_kind is not None and file_kind == kind, path, sources)


def _port(raw: str, var: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigurationError(f"env {var}: expected a port number from 1 to 65535, got {raw!r}")
    return port


def _url_sources(
    kind_var: str | None, from_file: bool, path: Path | None, parts: dict[str, str]
) -> dict[str, str]:
    """``url``: the file (if it chose the backend or gave a part), then ``env`` and the
    variables read, in part order; ``url.<part>``: where each part came from."""
    file_source = f"file {path}"
    variables = [kind_var] if kind_var else []
    variables += [
        source for source in parts.values() if not source.startswith(("file ", "default"))
    ]
    summary = []
    if from_file or file_source in parts.values():
        summary.append(file_source)
    if variables:
        summary.append("env " + ", ".join(dict.fromkeys(variables)))
    sources = {"url": ", ".join(summary) or "default"}
    for part, source in parts.items():
        named = source if source.startswith(("file ", "default")) else f"env {source}"
        sources[f"url.{part}"] = named
    return sources
