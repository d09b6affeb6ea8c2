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

from chatledger.errors import ConfigurationError

__all__ = ["Backend", "Config"]

logger = logging.getLogger(__name__)

#: The database backends chatledger supports.
Backend = Literal["sqlite", "postgresql", "mariadb"]

#: SQLAlchemy backend names (``url.get_backend_name()``) and the family each belongs to.
_BACKENDS: dict[str, Backend] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mysql": "mariadb",
    "mariadb": "mariadb",
}
#: The names DATABASE_TYPE and ``database.type`` accept (case-insensitive).
_ALIASES: dict[str, Backend] = {**_BACKENDS, "postgres": "postgresql"}
_DRIVERS = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}
_DEFAULT_DRIVER = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}
_DEFAULT_PORT = {"postgresql": 5432, "mariadb": 3306}
_DEFAULT_USER = {"postgresql": "postgres", "mariadb": "root"}
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
    "pooler": (("CHATLEDGER_POOLER",), _BOOL),
}
#: The settings that are flags (True or False).
_FLAGS = frozenset({"echo", "auto_upgrade", "pooler"})
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
    type: Backend | None = None
    url: str | None = None
    echo: bool | None = None
    auto_upgrade: bool | None = None
    pooler: bool | None = None
    sqlite: _SqliteSection | None = None
    postgresql: _ServerSection | None = None
    mariadb: _ServerSection | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _alias(cls, value: object) -> object:
        return _ALIASES.get(value.strip().lower(), value) if isinstance(value, str) else value


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
    #: A transaction-mode connection pooler (PgBouncer) sits in front of PostgreSQL: no
    #: server-side prepared statements, no session state outside what the pooler tracks.
    pooler: bool = False
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.url, URL):
            raise ConfigurationError("url: expected a sqlalchemy.engine.URL")
        _backend_of(self.url, "url")
        for name in _SETTINGS:
            object.__setattr__(self, name, _check(name, getattr(self, name)))

    @property
    def backend(self) -> Backend:
        """The backend family: ``"sqlite"``, ``"postgresql"`` or ``"mariadb"`` (also MySQL)."""
        return _backend_of(self.url, "url")

    def redacted_url(self) -> str:
        """The URL as a string with the password replaced by ``***``."""
        return self.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in _SETTINGS)
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
        file_url = _url_from_file(db, path, env) if db is not None and path is not None else None
        if url is not None:
            resolved = (_parse_url(url, "argument url"), "argument")
        else:
            resolved = _url_from_env(env, file_url is not None) or file_url or _default()
        values: dict[str, Any] = {"url": resolved[0]}
        sources = {"url": resolved[1]}
        backend = _backend_of(resolved[0], "argument url" if url is not None else resolved[1])
        from_file: dict[str, object] = {}
        if db is not None:
            lite = db.sqlite or _SqliteSection()
            server = {"postgresql": db.postgresql, "mariadb": db.mariadb}.get(backend)
            from_file = {
                "echo": db.echo,
                "auto_upgrade": db.auto_upgrade,
                "pooler": db.pooler,
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
        config = cls(**values, sources=MappingProxyType(sources))
        logger.debug("loaded %r from %s", config, sources)
        return config


def _check(name: str, value: object) -> object:
    """Validate one field given as a Python value; return it normalized."""
    ok = False
    if name in _FLAGS:
        ok = isinstance(value, bool)
    elif name == "sqlite_synchronous":
        value = value.upper() if isinstance(value, str) else value
        ok = value in ("NORMAL", "FULL")
    elif value is None:
        ok = name not in ("sqlite_busy_timeout", "sqlite_inline_budget")
    elif isinstance(value, bool):
        ok = False
    elif name in ("pool_timeout", "sqlite_busy_timeout", "sqlite_inline_budget") and isinstance(
        value, int | float
    ):
        value = float(value)
        ok = math.isfinite(value) and value >= 0
    elif isinstance(value, int):
        ok = value >= 0
    if not ok:
        raise ConfigurationError(f"{name}: expected {_SETTINGS[name][1]}, got {value!r}")
    return value


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
        if name in _FLAGS:
            value = True if text.lower() in _TRUE else False if text.lower() in _FALSE else None
        elif name == "sqlite_synchronous":
            value = text.upper() if text.upper() in ("NORMAL", "FULL") else None
        else:
            try:
                number = float(text) if name == "pool_timeout" else int(text)
                value = number if math.isfinite(number) and number >= 0 else None
            except ValueError:
                pass
        if value is None:
            expected = _SETTINGS[name][1].replace(_BOOL, "1/true/yes/on or 0/false/no/off")
            raise ConfigurationError(f"env {var}: expected {expected}, got {raw!r}")
        return value, var
    return None


def _backend_of(url: URL, source: str) -> Backend:
    """The backend family of ``url``; ConfigurationError naming ``source`` if unsupported."""
    name = url.get_backend_name()
    backend = _BACKENDS.get(name)
    if backend is None:
        raise ConfigurationError(
            f"{source}: unsupported database backend {name!r}; "
            "chatledger supports sqlite, postgresql and mariadb (mysql)"
        )
    return backend


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
    driver = driver or _DEFAULT_DRIVER.get(dialect, "")
    drivername = f"{dialect}+{driver}" if driver else dialect
    return url if drivername == url.drivername else url.set(drivername=drivername)


def _with_env_password(url: URL, env: Mapping[str, str], source: str) -> tuple[URL, str]:
    """Fill a URL's missing password from MARIADB_PASSWORD / DB_PASSWORD."""
    if url.password is None and url.username:
        for var in _PASSWORD_VARS.get(_BACKENDS.get(url.get_backend_name(), "sqlite"), ()):
            if (password := _get(env, var)) is not None:
                sep = ", " if source.startswith("env ") else ", env "
                return url.set(password=password), f"{source}{sep}{var}"
    return url, source


def _sqlite_url(raw: str, base: Path) -> URL:
    """A SQLite URL for ``raw``, resolved against ``base`` when relative."""
    if raw.strip() == ":memory:":
        return URL.create("sqlite", database=":memory:")
    path = Path(raw.strip()).expanduser()
    return URL.create("sqlite", database=os.path.normpath(base / path))


def _server_url(kind: str, sec: _ServerSection) -> URL:
    """A PostgreSQL or MariaDB URL from parts, with chatledger's defaults for missing parts."""
    return URL.create(
        _DRIVERS[kind],
        username=sec.user or _DEFAULT_USER[kind],
        password=sec.password or None,
        host=sec.host or "localhost",
        port=sec.port or _DEFAULT_PORT[kind],
        database=sec.database or "chatledger",
    )


def _default() -> tuple[URL, str]:
    """The default: a SQLite file in the user's data directory (not created here)."""
    path = Path(platformdirs.user_data_dir("chatledger")) / "chatledger.db"
    return URL.create("sqlite", database=str(path)), "default"


def _url_from_env(env: Mapping[str, str], file_has_url: bool) -> tuple[URL, str] | None:
    """Steps 2-5: full URLs, then MARIADB_URI, then parts. None if the env names no database."""
    for var in ("CHATLEDGER_DATABASE_URL", "DATABASE_URL"):
        if (raw := _get(env, var)) is not None:
            return _with_env_password(_parse_url(raw, f"env {var}"), env, f"env {var}")
    type_raw = _get(env, "DATABASE_TYPE")
    kind = _ALIASES.get(type_raw.strip().lower()) if type_raw else None
    if type_raw and kind is None:
        raise ConfigurationError(
            "env DATABASE_TYPE: expected sqlite, postgresql (or postgres) or mariadb "
            f"(or mysql), got {type_raw!r}"
        )
    if kind in (None, "mariadb") and (raw := _get(env, "MARIADB_URI")) is not None:
        return _with_env_password(_parse_url(raw, "env MARIADB_URI"), env, "env MARIADB_URI")
    if kind is None:
        maria = [v for v in (*_MARIADB_PARTS, "MARIADB_PORT") if _get(env, v)]
        generic = [v for v in _DB_PARTS if _get(env, v)]
        kind = "mariadb" if maria else "postgresql" if generic else None
        if kind is None:
            kind = "sqlite" if _get(env, "DB_PATH") else None
        elif file_has_url and all(v.endswith("_PASSWORD") for v in maria + generic):
            return None  # passwords alone do not override the file; they fill it in
        if kind is None:
            return None
    used = ["DATABASE_TYPE"] if type_raw else []

    def part(maria_var: str, generic_var: str) -> str | None:
        for var in (maria_var, generic_var) if kind == "mariadb" else (generic_var,):
            if (value := _get(env, var)) is not None:
                used.append(var)
                return value if var.endswith("_PASSWORD") else value.strip()
        return None

    if kind == "sqlite":
        path = part("DB_PATH", "DB_PATH")
        url = _sqlite_url(path, Path.cwd()) if path else _default()[0]
    else:
        host, port_raw = part("MARIADB_HOST", "DB_HOST"), part("MARIADB_PORT", "DB_PORT")
        port = None
        if port_raw is not None:
            try:
                port = int(port_raw)
            except ValueError:
                port = 0
            if not 1 <= port <= 65535:
                raise ConfigurationError(
                    f"env {used[-1]}: expected a port number from 1 to 65535, got {port_raw!r}"
                )
        name, user = part("MARIADB_DATABASE", "DB_NAME"), part("MARIADB_USER", "DB_USER")
        password = part("MARIADB_PASSWORD", "DB_PASSWORD")
        parts = _ServerSection(host=host, port=port, database=name, user=user, password=password)
        url = _server_url(kind, parts)
    return url, "env " + ", ".join(used)


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


def _url_from_file(
    db: _DatabaseSection, path: Path, env: Mapping[str, str]
) -> tuple[URL, str] | None:
    """Step 6: the file's URL, or its parts for the selected type. None if it names none."""
    source = f"file {path}"
    if db.url is not None:
        url = _parse_url(db.url, f"{source} (database.url)")
        backend = _backend_of(url, f"{source} (database.url)")
        if db.type is not None and backend != db.type:
            raise ConfigurationError(
                f"{source}: database.url is a {backend} URL but database.type is {db.type}"
            )
        return _with_env_password(url, env, source)
    kind = db.type
    if kind is None:
        found = ["sqlite"] if db.sqlite is not None and db.sqlite.path else []
        for name, sec in (("postgresql", db.postgresql), ("mariadb", db.mariadb)):
            if sec is not None and sec.model_fields_set & {"host", "port", "database", "user"}:
                found.append(name)
        if len(found) > 1:
            raise ConfigurationError(
                f"{source}: database.type is required when several backends are configured "
                f"({', '.join(found)})"
            )
        kind = _ALIASES[found[0]] if found else None
    if kind is None:
        return None
    if kind == "sqlite":
        lite = db.sqlite.path if db.sqlite is not None else None
        return (_sqlite_url(lite, path.parent) if lite else _default()[0]), source
    sec = (db.postgresql if kind == "postgresql" else db.mariadb) or _ServerSection()
    for var in _PASSWORD_VARS[kind]:
        if (value := _get(env, var)) is not None:
            sec, source = sec.model_copy(update={"password": value}), f"{source}, env {var}"
            break
    return _server_url(kind, sec), source
