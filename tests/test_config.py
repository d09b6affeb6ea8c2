"""Tests for chatledger.config: precedence, aliases, errors, sources and secret redaction."""

from __future__ import annotations

import dataclasses
import logging
import os
import traceback
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from sqlalchemy.engine import URL, make_url

from chatledger.config import Config
from chatledger.errors import ConfigurationError

pytestmark = pytest.mark.filterwarnings("error")

PASSWORD = "s3cr3t-P@ss/word"
ESCAPED = "s3cr3t-P%40ss%2Fword"
DEFAULT_DB = Path(platformdirs.user_data_dir("chatledger")) / "chatledger.db"
DEFAULT_URL = f"sqlite:///{DEFAULT_DB}"


def write(path: Path, text: str) -> Path:
    """Write a YAML file (creating its directory) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def plain(config: Config) -> str:
    """The URL with its password, for comparing."""
    return config.url.render_as_string(hide_password=False)


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message nor the formatted traceback may contain the password."""
    for text in (str(exc), repr(exc), "".join(traceback.format_exception(exc))):
        assert PASSWORD not in text
        assert ESCAPED not in text


# --- URL precedence --------------------------------------------------------------------------

LAYERS = ["argument", "CHATLEDGER_DATABASE_URL", "DATABASE_URL", "MARIADB_URI", "parts", "file"]


@pytest.mark.parametrize("top", range(len(LAYERS) + 1), ids=[*LAYERS, "default"])
def test_url_precedence_each_step_beats_all_lower_ones(tmp_path: Path, top: int) -> None:
    cfg = write(tmp_path / "chatledger.yaml", "database:\n  type: postgresql\n")
    layers: list[tuple[dict[str, Any], dict[str, str], str, str]] = [
        ({"url": "sqlite:////srv/arg.db"}, {}, "sqlite:////srv/arg.db", "argument"),
        (
            {},
            {"CHATLEDGER_DATABASE_URL": "postgresql+psycopg://a@h1/one"},
            "postgresql+psycopg://a@h1/one",
            "env CHATLEDGER_DATABASE_URL",
        ),
        (
            {},
            {"DATABASE_URL": "postgresql+psycopg://b@h2/two"},
            "postgresql+psycopg://b@h2/two",
            "env DATABASE_URL",
        ),
        (
            {},
            {"MARIADB_URI": "mysql+pymysql://c@h3/three"},
            "mysql+pymysql://c@h3/three",
            "env MARIADB_URI",
        ),
        (
            {},
            {"MARIADB_HOST": "h4"},
            "mysql+pymysql://root@h4:3306/chatledger",
            "env MARIADB_HOST",
        ),
        (
            {"config_file": cfg},
            {},
            "postgresql+psycopg://postgres@localhost:5432/chatledger",
            f"file {cfg}",
        ),
        ({}, {}, DEFAULT_URL, "default"),
    ]
    kwargs: dict[str, Any] = {}
    environ: dict[str, str] = {}
    for kw, env, _, _ in layers[top:]:
        kwargs.update(kw)
        environ.update(env)
    config = Config.load(environ=environ, **kwargs)
    assert plain(config) == layers[top][2]
    assert config.sources["url"] == layers[top][3]


def test_url_argument_accepts_url_object() -> None:
    url = URL.create("postgresql+psycopg", username="u", host="h", database="d")
    config = Config.load(url, environ={"DATABASE_URL": "sqlite:///other.db"})
    assert config.url == url
    assert config.sources["url"] == "argument"


def test_url_argument_of_wrong_type_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="argument url"):
        Config.load(42, environ={})  # type: ignore[arg-type]


def test_blank_url_variables_count_as_unset() -> None:
    env = {"CHATLEDGER_DATABASE_URL": "", "DATABASE_URL": "  ", "DB_HOST": "pg"}
    assert Config.load(environ=env).url.host == "pg"


@pytest.mark.parametrize("database_type", ["postgresql", "sqlite"])
def test_mariadb_uri_is_ignored_when_database_type_is_another_backend(
    tmp_path: Path, database_type: str
) -> None:
    env = {
        "DATABASE_TYPE": database_type,
        "MARIADB_URI": "mysql+pymysql://c@h3/three",
        "DB_HOST": "pg",
        "DB_PATH": str(tmp_path / "x.db"),
    }
    assert Config.load(environ=env).backend == database_type


@pytest.mark.parametrize("database_type", ["mariadb", "MySQL"])
def test_mariadb_uri_is_used_when_database_type_is_mariadb(database_type: str) -> None:
    env = {"DATABASE_TYPE": database_type, "MARIADB_URI": "mysql+pymysql://c@h3/three"}
    config = Config.load(environ=env)
    assert config.url.host == "h3"
    assert config.sources["url"] == "env MARIADB_URI"


# --- parts from the environment --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "backend"),
    [
        ("sqlite", "sqlite"),
        ("SQLite", "sqlite"),
        ("postgresql", "postgresql"),
        ("postgres", "postgresql"),
        ("POSTGRES", "postgresql"),
        ("mariadb", "mariadb"),
        ("mysql", "mariadb"),
        ("MySQL", "mariadb"),
    ],
)
def test_database_type_values_and_aliases(tmp_path: Path, value: str, backend: str) -> None:
    env = {"DATABASE_TYPE": value, "DB_HOST": "dbhost", "DB_PATH": str(tmp_path / "x.db")}
    config = Config.load(environ=env)
    assert config.backend == backend
    if backend == "sqlite":
        assert config.url.database == str(tmp_path / "x.db")
    else:
        assert config.url.host == "dbhost"
    assert config.sources["url"].startswith("env DATABASE_TYPE, ")


def test_invalid_database_type_lists_the_accepted_values() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(environ={"DATABASE_TYPE": "oracle"})
    message = str(excinfo.value)
    for word in ("DATABASE_TYPE", "'oracle'", "sqlite", "postgresql", "postgres", "mariadb"):
        assert word in message


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        ({"MARIADB_HOST": "m"}, "mariadb"),
        ({"MARIADB_DATABASE": "app"}, "mariadb"),
        ({"MARIADB_PORT": "3307"}, "mariadb"),
        ({"MARIADB_USER": "u", "DB_HOST": "h"}, "mariadb"),
        ({"DB_HOST": "h"}, "postgresql"),
        ({"DB_NAME": "n"}, "postgresql"),
        ({"DB_USER": "u"}, "postgresql"),
        ({"DB_PORT": "5433"}, "postgresql"),
        ({"DB_PASSWORD": "pw"}, "postgresql"),
        ({"DB_PATH": "/srv/x.db"}, "sqlite"),
        ({"DB_PATH": "/srv/x.db", "DB_HOST": "h"}, "postgresql"),
    ],
)
def test_backend_inferred_from_part_variables(env: dict[str, str], backend: str) -> None:
    assert Config.load(environ=env).backend == backend


@pytest.mark.parametrize(
    ("database_type", "expected"),
    [
        ("postgresql", "postgresql+psycopg://postgres@localhost:5432/chatledger"),
        ("mariadb", "mysql+pymysql://root@localhost:3306/chatledger"),
        ("sqlite", DEFAULT_URL),
    ],
)
def test_part_defaults(database_type: str, expected: str) -> None:
    config = Config.load(environ={"DATABASE_TYPE": database_type})
    assert plain(config) == expected
    assert config.sources["url"] == "env DATABASE_TYPE"


def test_maveric_db_parts_select_postgresql() -> None:
    env = {
        "DB_HOST": "db.internal",
        "DB_PORT": "5433",
        "DB_NAME": "maveric",
        "DB_USER": "maveric",
        "DB_PASSWORD": PASSWORD,
    }
    config = Config.load(environ=env)
    assert config.url.drivername == "postgresql+psycopg"
    assert (config.url.host, config.url.port) == ("db.internal", 5433)
    assert config.url.database == "maveric"
    assert (config.url.username, config.url.password) == ("maveric", PASSWORD)
    assert config.sources["url"] == "env DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD"


def test_mariadb_parts_prefer_mariadb_variables_then_fall_back_to_db_ones() -> None:
    env = {
        "MARIADB_HOST": "maria",
        "DB_HOST": "ignored",
        "DB_PORT": "3307",
        "DB_NAME": "app",
        "DB_USER": "appuser",
        "DB_PASSWORD": "generic",
        "MARIADB_PASSWORD": PASSWORD,
    }
    config = Config.load(environ=env)
    assert plain(config) == f"mysql+pymysql://appuser:{ESCAPED}@maria:3307/app"
    assert config.sources["url"] == "env MARIADB_HOST, DB_PORT, DB_NAME, DB_USER, MARIADB_PASSWORD"


@pytest.mark.parametrize("variable", ["DB_PORT", "MARIADB_PORT"])
@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "54.3"])
def test_bad_port_names_the_variable_and_hides_the_password(variable: str, value: str) -> None:
    env = {variable: value, "DB_PASSWORD": PASSWORD, "MARIADB_PASSWORD": PASSWORD}
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(environ=env)
    assert f"env {variable}" in str(excinfo.value)
    assert repr(value) in str(excinfo.value)
    assert_no_secret(excinfo.value)


def test_relative_db_path_is_resolved_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.load(environ={"DB_PATH": "data/../data/chat.db"})
    assert config.url.database == str(tmp_path / "data" / "chat.db")
    assert config.sources["url"] == "env DB_PATH"
    assert not (tmp_path / "data").exists()


def test_db_path_expands_the_home_directory() -> None:
    config = Config.load(environ={"DB_PATH": "~/chat.db"})
    assert config.url.database == os.path.expanduser("~/chat.db")


def test_db_path_memory() -> None:
    assert Config.load(environ={"DB_PATH": ":memory:"}).url.database == ":memory:"


# --- password filling (Coloraria) ------------------------------------------------------------


def test_coloraria_mariadb_uri_takes_its_password_from_mariadb_password() -> None:
    env = {"MARIADB_URI": "mysql+pymysql://coloraria@mariadb:3306/coloraria"}
    config = Config.load(environ={**env, "MARIADB_PASSWORD": PASSWORD})
    assert config.url.password == PASSWORD
    assert config.url.host == "mariadb"
    assert config.sources["url"] == "env MARIADB_URI, MARIADB_PASSWORD"


def test_a_password_in_the_uri_wins_over_mariadb_password() -> None:
    env = {"MARIADB_URI": "mysql+pymysql://c:own@mariadb/c", "MARIADB_PASSWORD": PASSWORD}
    config = Config.load(environ=env)
    assert config.url.password == "own"
    assert config.sources["url"] == "env MARIADB_URI"


def test_database_url_without_password_takes_db_password() -> None:
    env = {"DATABASE_URL": "postgresql+psycopg://app@pg/app", "DB_PASSWORD": PASSWORD}
    config = Config.load(environ=env)
    assert config.url.password == PASSWORD
    assert config.sources["url"] == "env DATABASE_URL, DB_PASSWORD"


def test_an_explicit_url_argument_is_used_as_given() -> None:
    config = Config.load("postgresql+psycopg://app@pg/app", environ={"DB_PASSWORD": PASSWORD})
    assert config.url.password is None


def test_coloraria_file_with_env_password(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yaml",
        "database:\n  type: mariadb\n  mariadb:\n    host: mariadb\n    port: 3306\n"
        "    database: coloraria\n    user: coloraria\n    password: from-file\n",
    )
    config = Config.load(config_file=cfg, environ={})
    assert plain(config) == "mysql+pymysql://coloraria:from-file@mariadb:3306/coloraria"
    assert config.sources["url"] == f"file {cfg}"
    config = Config.load(config_file=cfg, environ={"MARIADB_PASSWORD": PASSWORD})
    assert config.url.password == PASSWORD
    assert (config.url.host, config.url.database) == ("mariadb", "coloraria")
    assert config.sources["url"] == f"file {cfg}, env MARIADB_PASSWORD"


def test_file_url_without_password_takes_the_env_password(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  url: postgresql+psycopg://app@pg/app\n")
    config = Config.load(config_file=cfg, environ={"DB_PASSWORD": PASSWORD})
    assert config.url.password == PASSWORD
    assert config.sources["url"] == f"file {cfg}, env DB_PASSWORD"


def test_env_parts_and_file_parts_are_merged_field_by_field(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  type: mariadb\n  mariadb:\n    database: app\n")
    config = Config.load(config_file=cfg, environ={"DB_HOST": "pg"})
    assert plain(config) == "mysql+pymysql://root@pg:3306/app"
    assert config.sources["url"] == f"file {cfg}, env DB_HOST"
    assert config.sources["url.host"] == "env DB_HOST"
    assert config.sources["url.database"] == f"file {cfg}"
    assert config.sources["url.username"] == "default"


# --- the YAML file ---------------------------------------------------------------------------


def test_file_url_wins_over_file_parts(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  type: mariadb\n  url: mysql+pymysql://u@fromurl/db\n"
        "  mariadb:\n    host: fromparts\n",
    )
    assert Config.load(config_file=cfg, environ={}).url.host == "fromurl"


def test_file_url_contradicting_file_type_is_rejected(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  type: mariadb\n  url: postgresql://u@h/d\n")
    with pytest.raises(ConfigurationError, match=r"database\.url.*database\.type"):
        Config.load(config_file=cfg, environ={})


def test_file_type_is_inferred_from_a_single_section(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  postgresql:\n    host: pg\n    port: 6543\n")
    assert plain(Config.load(config_file=cfg, environ={})).endswith("@pg:6543/chatledger")


def test_file_with_several_sections_needs_a_type(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  postgresql:\n    host: pg\n  mariadb:\n    host: maria\n",
    )
    with pytest.raises(ConfigurationError, match=r"database\.type is required"):
        Config.load(config_file=cfg, environ={})


def test_file_sqlite_path_is_relative_to_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write(tmp_path / "conf" / "app.yaml", "database:\n  sqlite:\n    path: data/app.db\n")
    monkeypatch.chdir(tmp_path)
    config = Config.load(config_file="conf/app.yaml", environ={})
    assert config.url.database == str(tmp_path / "conf" / "data" / "app.db")
    assert config.sources["url"] == f"file {cfg}"


def test_file_sqlite_type_without_path_uses_the_default_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  type: sqlite\n")
    config = Config.load(config_file=cfg, environ={})
    assert plain(config) == DEFAULT_URL
    assert config.sources["url"] == f"file {cfg}"


def test_config_file_named_by_env_and_beaten_by_the_argument(tmp_path: Path) -> None:
    env_file = write(tmp_path / "env.yaml", "database:\n  echo: true\n")
    arg_file = write(tmp_path / "arg.yaml", "database:\n  echo: false\n")
    env = {"CHATLEDGER_CONFIG": str(env_file)}
    config = Config.load(environ=env)
    assert config.echo is True
    assert config.sources["echo"] == f"file {env_file}"
    config = Config.load(config_file=arg_file, environ=env)
    assert config.echo is False
    assert config.sources["echo"] == f"file {arg_file}"


@pytest.mark.parametrize("via", ["argument", "env"])
def test_missing_config_file_is_an_error(tmp_path: Path, via: str) -> None:
    missing = tmp_path / "nope.yaml"
    kwargs: dict[str, Any] = {"config_file": missing} if via == "argument" else {}
    env = {"CHATLEDGER_CONFIG": str(missing)} if via == "env" else {}
    with pytest.raises(ConfigurationError, match="does not exist") as excinfo:
        Config.load(environ=env, **kwargs)
    assert str(missing) in str(excinfo.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("database:\n  mariadb:\n    hots: x\n", "database.mariadb.hots: unknown key"),
        ("database:\n  mariadb:\n    port: abc\n", "database.mariadb.port"),
        ("database:\n  mariadb:\n    port: true\n", "database.mariadb.port"),
        ("database:\n  mariadb:\n    port: 70000\n", "database.mariadb.port"),
        ("database:\n  mariadb: 5\n", "database.mariadb: must be a mapping"),
        ("database: 5\n", "database: must be a mapping"),
        ("database: [1, 2]\n", "database: must be a mapping"),
        ("database:\n  type: oracle\n", "database.type"),
        ("database:\n  url: 5\n", "database.url"),
        ("database:\n  echo: maybe\n", "database.echo"),
        ("database:\n  pool_size: 5\n", "database.pool_size: unknown key"),
        ("database:\n  sqlite:\n    synchronous: SOMETIMES\n", "database.sqlite.synchronous"),
        ("database:\n  sqlite:\n    busy_timeout: -1\n", "database.sqlite.busy_timeout"),
        ("database:\n  sqlite:\n    inline_budget: -1\n", "database.sqlite.inline_budget"),
        ("database:\n  postgresql:\n    pool_size: -1\n", "database.postgresql.pool_size"),
        ("database:\n  postgresql:\n    pool_timeout: .inf\n", "database.postgresql.pool_timeout"),
        ("database:\n  postgresql:\n    max_overflow: 1.5\n", "database.postgresql.max_overflow"),
    ],
)
def test_invalid_file_names_the_key_path(tmp_path: Path, text: str, key: str) -> None:
    cfg = write(tmp_path / "c.yaml", text)
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(config_file=cfg, environ={})
    assert key in str(excinfo.value)
    assert str(cfg) in str(excinfo.value)


def test_invalid_file_errors_do_not_show_the_password(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        f"database:\n  mariadb:\n    password: '{PASSWORD}'\n    port: '{PASSWORD}'\n"
        f"    host: ['{PASSWORD}']\n",
    )
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(config_file=cfg, environ={})
    assert "database.mariadb.port" in str(excinfo.value)
    assert "database.mariadb.host" in str(excinfo.value)
    assert_no_secret(excinfo.value)


def test_invalid_yaml_reports_the_position_but_not_the_content(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", f"database:\n  mariadb:\n    password: {PASSWORD}\n  x: [\n")
    with pytest.raises(ConfigurationError, match="not valid YAML at line") as excinfo:
        Config.load(config_file=cfg, environ={})
    assert_no_secret(excinfo.value)


def test_file_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "- a\n- b\n")
    with pytest.raises(ConfigurationError, match="top level must be a mapping"):
        Config.load(config_file=cfg, environ={})


@pytest.mark.parametrize("text", ["", "database:\n", "app:\n  name: other\n"])
def test_empty_or_unrelated_file_gives_defaults(tmp_path: Path, text: str) -> None:
    cfg = write(tmp_path / "c.yaml", text)
    config = Config.load(config_file=cfg, environ={})
    assert plain(config) == DEFAULT_URL
    assert set(config.sources.values()) == {"default"}


def test_file_settings_and_their_sources(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  type: mariadb\n  echo: true\n  auto_upgrade: true\n  pooler: true\n"
        "  sqlite:\n    synchronous: full\n    busy_timeout: 2\n    inline_budget: 0\n"
        "  mariadb:\n    pool_size: 5\n    max_overflow: 6\n    pool_timeout: 7.5\n"
        "    pool_recycle: 8\n"
        "  postgresql:\n    pool_size: 50\n",
    )
    config = Config.load(config_file=cfg, environ={})
    assert (config.echo, config.auto_upgrade, config.pooler) == (True, True, True)
    assert (config.sqlite_synchronous, config.sqlite_busy_timeout) == ("FULL", 2.0)
    assert config.sqlite_inline_budget == 0.0
    assert (config.pool_size, config.max_overflow) == (5, 6)
    assert (config.pool_timeout, config.pool_recycle) == (7.5, 8)
    # The file names the backend; the URL's parts it leaves out are defaults.
    # The URL's parts, the open and replica settings the file leaves out.
    unset = ("url.", "open_", "use_database", "replica")
    assert {config.sources[name] for name in config.sources if not name.startswith(unset)} == {
        f"file {cfg}"
    }
    assert config.sources["url.host"] == "default"


def test_file_pool_settings_come_from_the_section_of_the_backend_in_use(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  type: mariadb\n  mariadb:\n    pool_size: 5\n  postgresql:\n"
        "    pool_size: 50\n",
    )
    env = {"DATABASE_URL": "postgresql+psycopg://u@pg/app"}
    assert Config.load(config_file=cfg, environ=env).pool_size == 50
    env = {"DATABASE_URL": "sqlite:////srv/x.db"}
    config = Config.load(config_file=cfg, environ=env)
    assert config.pool_size is None
    assert config.sources["pool_size"] == "default"


def test_env_beats_the_file_setting_by_setting(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  type: postgresql\n  echo: true\n  sqlite:\n    synchronous: FULL\n"
        "  postgresql:\n    pool_size: 5\n    max_overflow: 6\n",
    )
    env = {"DB_ECHO": "0", "CHATLEDGER_SQLITE_SYNCHRONOUS": "normal", "DATABASE_POOL_SIZE": "9"}
    config = Config.load(config_file=cfg, environ=env)
    assert (config.echo, config.sqlite_synchronous, config.pool_size) == (False, "NORMAL", 9)
    assert config.max_overflow == 6
    assert config.sources["echo"] == "env DB_ECHO"
    assert config.sources["sqlite_synchronous"] == "env CHATLEDGER_SQLITE_SYNCHRONOUS"
    assert config.sources["pool_size"] == "env DATABASE_POOL_SIZE"
    assert config.sources["max_overflow"] == f"file {cfg}"


# --- other settings from the environment -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("NO", False),
        ("off", False),
        ("", False),
    ],
)
@pytest.mark.parametrize("variable", ["DB_ECHO", "SQL_ECHO", "DATABASE_ECHO"])
def test_echo_variables(variable: str, raw: str, expected: bool) -> None:
    config = Config.load(environ={variable: raw})
    assert config.echo is expected
    assert config.sources["echo"] == f"env {variable}"


@pytest.mark.parametrize(
    ("env", "expected", "source"),
    [
        ({"DB_ECHO": "0", "SQL_ECHO": "1", "DATABASE_ECHO": "1"}, False, "DB_ECHO"),
        ({"DB_ECHO": "", "SQL_ECHO": "1"}, False, "DB_ECHO"),
        ({"SQL_ECHO": "1", "DATABASE_ECHO": "0"}, True, "SQL_ECHO"),
    ],
)
def test_first_set_echo_variable_wins(env: dict[str, str], expected: bool, source: str) -> None:
    config = Config.load(environ=env)
    assert config.echo is expected
    assert config.sources["echo"] == f"env {source}"


@pytest.mark.parametrize("raw", ["1", "yes"])
def test_auto_upgrade_from_env(raw: str) -> None:
    config = Config.load(environ={"CHATLEDGER_AUTO_UPGRADE": raw})
    assert config.auto_upgrade is True
    assert config.sources["auto_upgrade"] == "env CHATLEDGER_AUTO_UPGRADE"


@pytest.mark.parametrize("raw", ["1", "on"])
def test_pooler_from_env(raw: str) -> None:
    config = Config.load(environ={"CHATLEDGER_POOLER": raw})
    assert config.pooler is True
    assert config.sources["pooler"] == "env CHATLEDGER_POOLER"


@pytest.mark.parametrize(
    "variable", ["DB_ECHO", "SQL_ECHO", "DATABASE_ECHO", "CHATLEDGER_AUTO_UPGRADE"]
)
def test_bad_boolean_names_the_variable(variable: str) -> None:
    with pytest.raises(ConfigurationError, match=f"env {variable}: .*'maybe'"):
        Config.load(environ={variable: "maybe"})


@pytest.mark.parametrize(
    ("variable", "setting", "raw", "expected"),
    [
        ("DATABASE_POOL_SIZE", "pool_size", "20", 20),
        ("DB_POOL_SIZE", "pool_size", " 7 ", 7),
        ("DATABASE_POOL_SIZE", "pool_size", "0", 0),
        ("DATABASE_MAX_OVERFLOW", "max_overflow", "3", 3),
        ("DB_MAX_OVERFLOW", "max_overflow", "4", 4),
        ("DATABASE_POOL_TIMEOUT", "pool_timeout", "2.5", 2.5),
        ("DATABASE_POOL_TIMEOUT", "pool_timeout", "30", 30.0),
        ("DATABASE_POOL_RECYCLE", "pool_recycle", "1800", 1800),
    ],
)
def test_pool_settings_from_env(variable: str, setting: str, raw: str, expected: object) -> None:
    config = Config.load(environ={variable: raw})
    assert getattr(config, setting) == expected
    assert config.sources[setting] == f"env {variable}"


@pytest.mark.parametrize(
    ("env", "expected", "source"),
    [
        ({"DATABASE_POOL_SIZE": "1", "DB_POOL_SIZE": "2"}, 1, "DATABASE_POOL_SIZE"),
        ({"DATABASE_POOL_SIZE": "", "DB_POOL_SIZE": "2"}, 2, "DB_POOL_SIZE"),
    ],
)
def test_pool_size_variable_order(env: dict[str, str], expected: int, source: str) -> None:
    config = Config.load(environ=env)
    assert config.pool_size == expected
    assert config.sources["pool_size"] == f"env {source}"


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("DATABASE_POOL_SIZE", "ten"),
        ("DATABASE_POOL_SIZE", "-1"),
        ("DB_POOL_SIZE", "1.5"),
        ("DATABASE_MAX_OVERFLOW", "-2"),
        ("DB_MAX_OVERFLOW", "x"),
        ("DATABASE_POOL_TIMEOUT", "soon"),
        ("DATABASE_POOL_TIMEOUT", "-0.5"),
        ("DATABASE_POOL_TIMEOUT", "nan"),
        ("DATABASE_POOL_TIMEOUT", "inf"),
        ("DATABASE_POOL_RECYCLE", "1h"),
    ],
)
def test_bad_number_names_the_variable_and_value(variable: str, raw: str) -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(environ={variable: raw})
    assert f"env {variable}" in str(excinfo.value)
    assert repr(raw) in str(excinfo.value)


@pytest.mark.parametrize(("raw", "expected"), [("full", "FULL"), ("Normal", "NORMAL")])
def test_sqlite_synchronous_from_env(raw: str, expected: str) -> None:
    config = Config.load(environ={"CHATLEDGER_SQLITE_SYNCHRONOUS": raw})
    assert config.sqlite_synchronous == expected


def test_bad_sqlite_synchronous_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"CHATLEDGER_SQLITE_SYNCHRONOUS.*'OFF'"):
        Config.load(environ={"CHATLEDGER_SQLITE_SYNCHRONOUS": "OFF"})


def test_rag_app_database_type_and_pool_variables() -> None:
    env = {
        "DATABASE_TYPE": "postgres",
        "DB_HOST": "pg",
        "DB_NAME": "rag",
        "DB_USER": "rag",
        "DB_PASSWORD": PASSWORD,
        "DATABASE_POOL_SIZE": "20",
        "DATABASE_MAX_OVERFLOW": "10",
        "DATABASE_POOL_TIMEOUT": "30",
        "DATABASE_POOL_RECYCLE": "3600",
        "DATABASE_ECHO": "false",
    }
    config = Config.load(environ=env)
    assert plain(config) == f"postgresql+psycopg://rag:{ESCAPED}@pg:5432/rag"
    assert (config.pool_size, config.max_overflow) == (20, 10)
    assert (config.pool_timeout, config.pool_recycle) == (30.0, 3600)
    assert dict(config.sources) == {
        "url": "env DATABASE_TYPE, DB_HOST, DB_NAME, DB_USER, DB_PASSWORD",
        "url.host": "env DB_HOST",
        "url.port": "default",
        "url.database": "env DB_NAME",
        "url.username": "env DB_USER",
        "url.password": "env DB_PASSWORD",
        "echo": "env DATABASE_ECHO",
        "pool_size": "env DATABASE_POOL_SIZE",
        "max_overflow": "env DATABASE_MAX_OVERFLOW",
        "pool_timeout": "env DATABASE_POOL_TIMEOUT",
        "pool_recycle": "env DATABASE_POOL_RECYCLE",
        "sqlite_synchronous": "default",
        "sqlite_busy_timeout": "default",
        "sqlite_inline_budget": "default",
        "auto_upgrade": "default",
        "open_timeout": "default",
        "open_retries": "default",
        "open_retry_delay": "default",
        "pooler": "default",
        "use_database": "default",
        "replicas": "default",
        "replica_max_lag": "default",
        "replica_wait": "default",
    }


# --- keyword overrides -----------------------------------------------------------------------


def test_overrides_win_over_env_and_file(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  sqlite:\n    busy_timeout: 3\n")
    env = {"DB_ECHO": "0", "DATABASE_POOL_SIZE": "9", "CHATLEDGER_SQLITE_SYNCHRONOUS": "NORMAL"}
    config = Config.load(
        config_file=cfg,
        environ=env,
        echo=True,
        pool_size=3,
        sqlite_synchronous="full",
        sqlite_busy_timeout=1,
        sqlite_inline_budget=0,
    )
    assert (config.echo, config.pool_size, config.sqlite_synchronous) == (True, 3, "FULL")
    assert (config.sqlite_busy_timeout, config.sqlite_inline_budget) == (1.0, 0.0)
    names = ("echo", "pool_size", "sqlite_synchronous", "sqlite_busy_timeout")
    for name in (*names, "sqlite_inline_budget"):
        assert config.sources[name] == "argument"


def test_override_of_none_counts_as_not_given() -> None:
    config = Config.load(environ={"DB_ECHO": "1"}, echo=None, pool_size=None)
    assert config.echo is True
    assert config.sources["echo"] == "env DB_ECHO"
    assert config.sources["pool_size"] == "default"


def test_an_override_hides_a_bad_env_value() -> None:
    assert Config.load(environ={"DB_ECHO": "maybe"}, echo=False).echo is False


@pytest.mark.parametrize("names", [["colour"], ["poolsize", "sources"]])
def test_unknown_overrides_are_named(names: list[str]) -> None:
    overrides: dict[str, Any] = dict.fromkeys(names, 1)
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(environ={}, **overrides)
    for name in names:
        assert name in str(excinfo.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("echo", "yes"),
        ("auto_upgrade", 1),
        ("pool_size", -1),
        ("pool_size", True),
        ("max_overflow", 1.5),
        ("pool_recycle", "60"),
        ("pool_timeout", -0.1),
        ("pool_timeout", float("nan")),
        ("sqlite_busy_timeout", -1),
        ("sqlite_inline_budget", -0.001),
        ("sqlite_inline_budget", float("inf")),
        ("sqlite_synchronous", "OFF"),
    ],
)
def test_bad_override_names_the_setting(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"^{name}: expected"):
        Config.load(environ={}, **{name: value})


# --- URLs: drivers, backends, malformed ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "drivername", "backend"),
    [
        ("postgres://u@h/d", "postgresql+psycopg", "postgresql"),
        ("postgresql://u@h/d", "postgresql+psycopg", "postgresql"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg", "postgresql"),
        ("mysql://u@h/d", "mysql+pymysql", "mariadb"),
        ("mariadb://u@h/d", "mariadb+pymysql", "mariadb"),
        ("mysql+mysqldb://u@h/d", "mysql+mysqldb", "mariadb"),
        ("mariadb+mariadbconnector://u@h/d", "mariadb+mariadbconnector", "mariadb"),
        ("sqlite:///rel.db", "sqlite", "sqlite"),
        ("sqlite+pysqlite:////abs.db", "sqlite+pysqlite", "sqlite"),
    ],
)
def test_drivers_are_defaulted_and_backends_classified(
    raw: str, drivername: str, backend: str
) -> None:
    config = Config.load(raw, environ={})
    assert config.url.drivername == drivername
    assert config.backend == backend


@pytest.mark.parametrize(
    ("env", "source"),
    [({"DATABASE_URL": "oracle://u@h/d"}, "env DATABASE_URL"), ({}, "argument url")],
)
def test_unsupported_backend_is_rejected(env: dict[str, str], source: str) -> None:
    url = None if env else "mssql+pyodbc://u@h/d"
    with pytest.raises(ConfigurationError, match=f"{source}: unsupported database backend"):
        Config.load(url, environ=env)


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        Config(url=make_url("oracle://u@h/d"))
    with pytest.raises(ConfigurationError, match="pool_size"):
        Config(url=make_url("sqlite://"), pool_size=-1)


MALFORMED = [
    f"postgresql+psycopg://app:{ESCAPED}@db:notaport/app",
    f"postgresql+psycopg://app:{PASSWORD}@db:5432/app",
    f"not a url {PASSWORD}",
]


@pytest.mark.parametrize("raw", MALFORMED)
@pytest.mark.parametrize(
    "where", ["argument", "CHATLEDGER_DATABASE_URL", "DATABASE_URL", "MARIADB_URI", "file"]
)
def test_malformed_url_names_its_source_and_hides_the_password(
    tmp_path: Path, raw: str, where: str
) -> None:
    cfg = write(tmp_path / "c.yaml", f"database:\n  url: '{raw}'\n")
    choices: dict[str, dict[str, Any]] = {"argument": {"url": raw}, "file": {"config_file": cfg}}
    kwargs = choices.get(where, {})
    env = {where: raw} if where.isupper() else {}
    with pytest.raises(ConfigurationError) as excinfo:
        Config.load(environ=env, **kwargs)
    expected = {"argument": "argument url", "file": f"file {cfg} (database.url)"}
    assert expected.get(where, f"env {where}") in str(excinfo.value)
    assert_no_secret(excinfo.value)


# --- secrets, escaping, equality -------------------------------------------------------------


@pytest.mark.parametrize("password", ["p@ss", "a/b", "c:d", PASSWORD, "50%off", "sp ace", "#?&"])
@pytest.mark.parametrize("via", ["DB_PASSWORD", "MARIADB_PASSWORD", "file", "MARIADB_URI"])
def test_password_escaping_round_trips(tmp_path: Path, password: str, via: str) -> None:
    kwargs: dict[str, Any] = {}
    if via == "file":
        quoted = password.replace("'", "''")
        text = f"database:\n  type: mariadb\n  mariadb:\n    password: '{quoted}'\n"
        kwargs["config_file"] = write(tmp_path / "c.yaml", text)
        env = {}
    elif via == "MARIADB_URI":
        env = {"MARIADB_URI": "mysql+pymysql://u@h/d", "MARIADB_PASSWORD": password}
    else:
        env = {"DB_HOST" if via == "DB_PASSWORD" else "MARIADB_HOST": "h", via: password}
    config = Config.load(environ=env, **kwargs)
    assert config.url.password == password
    assert make_url(plain(config)).password == password
    assert password not in config.redacted_url()


def test_password_is_redacted_from_repr_str_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  type: mariadb\n  mariadb:\n    password: x\n")
    env = {"MARIADB_PASSWORD": PASSWORD}
    with caplog.at_level(logging.DEBUG, logger="chatledger.config"):
        config = Config.load(config_file=cfg, environ=env)
    assert config.url.password == PASSWORD
    assert caplog.records
    for text in (repr(config), str(config), config.redacted_url(), caplog.text):
        assert PASSWORD not in text
        assert ESCAPED not in text
    assert config.redacted_url() == "mysql+pymysql://root:***@localhost:3306/chatledger"
    assert repr(config).startswith("Config(url='mysql+pymysql://root:***@localhost:3306/")


def test_sources_are_ignored_by_equality_and_hashing() -> None:
    a = Config.load("sqlite:////srv/x.db", environ={})
    b = Config.load(environ={"DB_PATH": "/srv/x.db"})
    assert a.sources != b.sources
    assert a == b
    assert hash(a) == hash(b)
    assert a != Config.load("sqlite:////srv/x.db", environ={}, echo=True)


def test_config_and_sources_are_read_only() -> None:
    config = Config.load(environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.echo = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.sources["url"] = "x"  # type: ignore[index]


def test_default_settings_and_sources() -> None:
    config = Config.load(environ={})
    assert plain(config) == DEFAULT_URL
    assert config.backend == "sqlite"
    assert (config.echo, config.auto_upgrade, config.pool_size) == (False, False, None)
    assert (config.sqlite_synchronous, config.sqlite_busy_timeout) == ("NORMAL", 10.0)
    assert config.sqlite_inline_budget == 0.002
    assert list(config.sources) == [
        "url",
        "url.database",
        "echo",
        "pool_size",
        "max_overflow",
        "pool_timeout",
        "pool_recycle",
        "sqlite_synchronous",
        "sqlite_busy_timeout",
        "sqlite_inline_budget",
        "auto_upgrade",
        "open_timeout",
        "open_retries",
        "open_retry_delay",
        "pooler",
        "use_database",
        "replicas",
        "replica_max_lag",
        "replica_wait",
    ]
    assert set(config.sources.values()) == {"default"}


# --- each part of the URL on its own (issue 20) ---------------------------------------------


def test_coloraria_host_from_env_keeps_the_file_database_and_user(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config" / "config.yaml",
        "database:\n  type: mariadb\n  mariadb:\n    host: mariadb\n"
        "    database: coloraria\n    user: coloraria\n",
    )
    env = {"MARIADB_HOST": "db.example", "MARIADB_PASSWORD": PASSWORD}
    config = Config.load(config_file=cfg, environ=env)
    assert plain(config) == f"mysql+pymysql://coloraria:{ESCAPED}@db.example:3306/coloraria"
    assert config.sources["url.host"] == "env MARIADB_HOST"
    assert config.sources["url.database"] == f"file {cfg}"
    assert config.sources["url.username"] == f"file {cfg}"
    assert config.sources["url.password"] == "env MARIADB_PASSWORD"
    assert config.sources["url.port"] == "default"
    assert config.sources["url"] == f"file {cfg}, env MARIADB_HOST, MARIADB_PASSWORD"


def test_database_type_sqlite_uses_the_file_sqlite_path(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config" / "config.yaml",
        "database:\n  type: mariadb\n  mariadb:\n    host: mariadb\n"
        "  sqlite:\n    path: data/coloraria.db\n",
    )
    config = Config.load(config_file=cfg, environ={"DATABASE_TYPE": "sqlite"})
    assert config.url.database == str(tmp_path / "config" / "data" / "coloraria.db")
    assert config.sources["url.database"] == f"file {cfg}"
    assert config.sources["url"] == f"file {cfg}, env DATABASE_TYPE"


def test_env_parts_fill_a_file_url_field_by_field(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  url: postgresql+psycopg://app@pg:6543/app?sslmode=disable\n",
    )
    config = Config.load(config_file=cfg, environ={"DB_NAME": "other", "DB_PASSWORD": PASSWORD})
    assert plain(config) == f"postgresql+psycopg://app:{ESCAPED}@pg:6543/other?sslmode=disable"
    assert config.sources["url.port"] == f"file {cfg}"
    assert config.sources["url.database"] == "env DB_NAME"


def test_a_password_alone_does_not_change_the_file_backend(tmp_path: Path) -> None:
    cfg = write(tmp_path / "c.yaml", "database:\n  postgresql:\n    host: pg\n")
    config = Config.load(config_file=cfg, environ={"MARIADB_PASSWORD": PASSWORD})
    assert config.backend == "postgresql"
    assert config.url.password is None


def test_use_database_off_keeps_the_store_in_memory(tmp_path: Path) -> None:
    """``USE_DATABASE=false`` (or ``CHATLEDGER_USE_DATABASE``, or the file's
    ``database.use_database``): no server, no file, whatever URL is configured."""
    env = {"USE_DATABASE": "false", "DATABASE_URL": "postgresql://app:secret@db:5432/app"}
    config = Config.load(environ=env)
    assert config.use_database is False
    assert (config.backend, config.url.database) == ("sqlite", ":memory:")
    assert config.sources["use_database"] == "env USE_DATABASE"
    assert config.sources["url"] == "in memory (env USE_DATABASE: use_database off)"
    assert "secret" not in repr(config)
    on = Config.load(environ={"CHATLEDGER_USE_DATABASE": "1", "USE_DATABASE": "false"})
    assert on.use_database is True
    assert on.sources["use_database"] == "env CHATLEDGER_USE_DATABASE"
    assert Config.load(environ={}).use_database is True
    file = tmp_path / "config.yaml"
    file.write_text("database:\n  use_database: false\n  type: mariadb\n", encoding="utf-8")
    from_file = Config.load(config_file=file, environ={})
    assert from_file.use_database is False
    assert from_file.url.database == ":memory:"
    assert from_file.sources["use_database"] == f"file {file}"
    with pytest.raises(ConfigurationError, match="env USE_DATABASE"):
        Config.load(environ={"USE_DATABASE": "perhaps"})


# --- read replicas (issue 18) ----------------------------------------------------------------


def test_replica_urls_from_each_source_with_provenance(tmp_path: Path) -> None:
    primary = "postgresql://app:s3cret@db1/chat"
    given = Config.load(primary, environ={}, replicas=["postgresql://app@db2/chat"])
    assert [str(url) for url in given.replicas] == ["postgresql+psycopg://app@db2/chat"]
    assert given.sources["replicas"] == "argument"
    env = {
        "CHATLEDGER_REPLICA_URLS": "postgresql://app:pw@db2/chat, postgresql://app@db3/chat",
        "CHATLEDGER_REPLICA_MAX_LAG": "2.5",
        "CHATLEDGER_REPLICA_WAIT": "0",
    }
    from_env = Config.load(primary, environ=env)
    assert [url.host for url in from_env.replicas] == ["db2", "db3"]
    assert (from_env.replica_max_lag, from_env.replica_wait) == (2.5, 0.0)
    assert from_env.sources["replicas"] == "env CHATLEDGER_REPLICA_URLS"
    assert "pw" not in repr(from_env)
    assert from_env.redacted_replicas()[0] == "postgresql+psycopg://app:***@db2/chat"
    cfg = write(
        tmp_path / "c.yaml",
        "database:\n  url: mysql://root@db1/chat\n  replicas: [mysql://root@db2/chat]\n"
        "  replica_wait: 1\n",
    )
    from_file = Config.load(config_file=cfg, environ={})
    assert [url.host for url in from_file.replicas] == ["db2"]
    assert from_file.sources["replicas"] == f"file {cfg}"
    assert from_file.replica_wait == 1.0


def test_replica_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match=r"replicas\[0\]: a mariadb URL"):
        Config.load("postgresql://db1/chat", environ={}, replicas=["mysql://db2/chat"])
    with pytest.raises(ConfigurationError, match="SQLite has no replica URLs"):
        Config.load("sqlite:///x.db", environ={}, replicas=["sqlite:///y.db"])
    with pytest.raises(ConfigurationError, match="CHATLEDGER_REPLICA_WAIT"):
        Config.load("postgresql://db1/chat", environ={"CHATLEDGER_REPLICA_WAIT": "-1"})
    with pytest.raises(ConfigurationError, match="replica_max_lag"):
        Config.load("postgresql://db1/chat", environ={}, replica_max_lag=-1)


def test_litefs_db_path_names_the_sqlite_file() -> None:
    config = Config.load(environ={"LITEFS_DB_PATH": "/litefs/app.db"})
    assert config.url.database == "/litefs/app.db"
    assert config.sources["url.database"] == "env LITEFS_DB_PATH"
