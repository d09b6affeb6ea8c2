"""Private database servers for the cluster tests: MariaDB (alone, as Galera nodes, or a GTID
replica), PostgreSQL (alone, or a primary and its streaming standby) and PgBouncer, each on
its own free loopback ports in its own temporary directory.

Every server is a context manager that removes its process and its directory on exit, even
when starting failed half-way. The tools come from the Debian packages (``mariadb-server``,
``galera-4``, ``postgresql-15``, ``pgbouncer``, ``rsync``); :func:`require` turns a missing one
into a skip outside CI and into a failure in CI (``CI=true``), like the shared servers.

Reusable by any test that needs servers of its own (clusters, replicas, poolers)::

    with MariaDB(options={"log_bin": "ON"}) as server:
        url = server.url("chatledger")
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = "/usr/bin/mariadb-install-db"
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
PGBOUNCER = "/usr/sbin/pgbouncer"
GALERA_LIBRARIES = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")
#: The OS users the servers run as: PostgreSQL refuses root, and Galera's rsync state
#: transfer (an rsync daemon) drops root to ``nobody``, which cannot write the datadir.
POSTGRES_USER = "postgres"
MARIADB_USER = "mysql"
START_TIMEOUT = 120.0


def require(*paths: str) -> None:
    """Skip (outside CI) or fail (in CI) unless every executable or file in ``paths`` exists."""
    missing = [p for p in paths if not (os.path.exists(p) or shutil.which(p))]
    if not missing:
        return
    reason = f"not installed: {', '.join(missing)} (see .ci/run)"
    if IN_CI:
        pytest.fail(f"{reason}; in CI a missing tool is a failure")
    pytest.skip(reason)


def galera_library() -> str:
    """The path of the Galera provider library (skip or fail when absent)."""
    for path in GALERA_LIBRARIES:
        if os.path.exists(path):
            return path
    require(GALERA_LIBRARIES[0])
    raise AssertionError("unreachable")  # pragma: no cover


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback TCP ports free right now (held open together while chosen,
    so they differ), below the kernel's ephemeral range: a port from ``bind(0)`` is in that
    range, where any outgoing connection of any process may take it before the server that
    was given it starts listening (a Galera node starting seconds after its port was chosen
    failed with "Address already in use")."""
    low = _EPHEMERAL_LOW
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", random.randrange(10_000, low)))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW: int = max(_ephemeral_low(), 11_000)


def wait_until(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    """Poll ``ready`` until it is true; fail with the log when ``process`` exits or time is up."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {START_TIMEOUT:.0f}s")


def _stop(
    process: subprocess.Popen[bytes] | None,
    timeout: float = 60.0,
    how: signal.Signals = signal.SIGTERM,
) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _give(directory: Path, user: str) -> None:
    """Let ``user`` own ``directory`` (when running as root, as CI does)."""
    if os.geteuid() == 0:
        shutil.chown(directory, user, user)


class _Server:
    """A process in a temporary directory, removed on exit."""

    name = "server"

    def __init__(self, directory: Path | None = None) -> None:
        self._owned = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix=f"chatledger-{self.name}-"))
            if directory is None
            else directory
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.directory / f"{self.name}.log"

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the process (the directory stays until exit)."""
        _stop(self.process)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, RuntimeError):
                raise RuntimeError(f"{exc}; log {self.log}:\n{self.log_tail()}") from exc
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)


class MariaDB(_Server):
    """A ``mariadbd`` on a free loopback port with its own datadir and socket.

    ``options`` are extra server options (``--name=value``); ``wsrep_new_cluster`` bootstraps
    a Galera cluster (see :class:`Galera`).
    """

    name = "mariadb"

    def __init__(
        self,
        options: Mapping[str, str] | None = None,
        *,
        port: int | None = None,
        directory: Path | None = None,
        wsrep_new_cluster: bool = False,
    ) -> None:
        require(MARIADBD, MARIADB_INSTALL_DB)
        super().__init__(directory)
        self.port = port if port is not None else free_ports(1)[0]
        self.datadir = self.directory / "data"
        self.socket = self.directory / "mariadb.sock"
        self.options = dict(options or {})
        self.wsrep_new_cluster = wsrep_new_cluster
        _give(self.directory, MARIADB_USER)

    def _base_options(self) -> list[str]:
        return [
            "--no-defaults",  # the machine's my.cnf (the shared server's port, datadir) is not ours
            f"--datadir={self.datadir}",
            f"--user={MARIADB_USER}",
        ]

    def start(self) -> None:
        if not self.datadir.exists():
            self._install()
        arguments = [
            MARIADBD,
            *self._base_options(),
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mariadb.pid'}",
            f"--log-error={self.log}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=2",  # a test server: durability is not under test
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            *(f"--{name}={value}" for name, value in self.options.items()),
        ]
        if self.wsrep_new_cluster:
            arguments.append("--wsrep-new-cluster")
        self.process = subprocess.Popen(
            arguments, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(f"mariadbd on port {self.port}", self.ready, self.process)

    def _install(self) -> None:
        """Make the datadir (``mariadb-install-db``). Its bootstrap server failed now and then
        on a loaded machine without saying why: a second try starts from an empty datadir."""
        output = ""
        for _ in range(2):
            shutil.rmtree(self.datadir, ignore_errors=True)
            installed = subprocess.run(
                [
                    MARIADB_INSTALL_DB,
                    *self._base_options(),
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    "--skip-name-resolve",
                ],
                check=False,
                capture_output=True,
            )
            if installed.returncode == 0:
                return
            output = (installed.stdout + installed.stderr).decode(errors="replace")
        raise RuntimeError(f"mariadb-install-db failed:\n{output[-3000:]}")

    def url(self, database: str = "mysql") -> URL:
        """A URL of this server (root, no password) for ``database``."""
        return URL.create("mysql+pymysql", "root", None, "127.0.0.1", self.port, database)

    def ready(self) -> bool:
        """Whether the server accepts queries (and, in a cluster, is synced)."""
        engine = sa.create_engine(self.url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                if self.options.get("wsrep_on") == "ON":
                    state = conn.execute(sa.text("SHOW STATUS LIKE 'wsrep_local_state_comment'"))
                    return bool(state.one()[1] == "Synced")
                conn.execute(sa.text("SELECT 1"))
                return True
        except sa.exc.DBAPIError:
            return False
        finally:
            engine.dispose()

    def execute(self, statement: str) -> None:
        """Run one administrative statement in autocommit."""
        engine = sa.create_engine(
            self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(statement))
        finally:
            engine.dispose()


class Galera:
    """A MariaDB Galera cluster of ``size`` nodes on loopback, each with its own datadir,
    client port and Galera ports (group communication, IST, SST). The first node bootstraps
    the cluster; the others join one at a time (state transfer by ``rsync``).
    ``options`` are added to every node's server options."""

    def __init__(self, size: int = 3, options: Mapping[str, str] | None = None) -> None:
        require(MARIADBD, MARIADB_INSTALL_DB, "rsync")
        self.library = galera_library()
        self.directory = Path(tempfile.mkdtemp(prefix="chatledger-galera-"))
        _give(self.directory, MARIADB_USER)
        ports = free_ports(4 * size)
        self.client_ports = ports[0::4]
        gcomm = ports[1::4]
        address = "gcomm://" + ",".join(f"127.0.0.1:{p}" for p in gcomm)
        self.nodes: list[MariaDB] = []
        for index in range(size):
            directory = self.directory / f"node{index + 1}"
            directory.mkdir()
            node_options = {
                "wsrep_on": "ON",
                "wsrep_provider": self.library,
                "wsrep_cluster_name": "chatledger",
                "wsrep_cluster_address": address,
                "wsrep_node_name": f"node{index + 1}",
                "wsrep_node_address": f"127.0.0.1:{gcomm[index]}",
                "wsrep_node_incoming_address": f"127.0.0.1:{self.client_ports[index]}",
                "wsrep_sst_method": "rsync",
                "wsrep_sst_receive_address": f"127.0.0.1:{ports[4 * index + 3]}",
                "wsrep_provider_options": (
                    f"gmcast.listen_addr=tcp://127.0.0.1:{gcomm[index]};"
                    f"ist.recv_addr=127.0.0.1:{ports[4 * index + 2]};"
                    "gcache.size=64M;evs.suspect_timeout=PT10S"
                ),
                "binlog_format": "ROW",
                "innodb_autoinc_lock_mode": "2",
                "default_storage_engine": "InnoDB",
                **(options or {}),
            }
            self.nodes.append(
                MariaDB(
                    node_options,
                    port=self.client_ports[index],
                    directory=directory,
                    wsrep_new_cluster=index == 0,
                )
            )

    def __enter__(self) -> Self:
        try:
            for node in self.nodes:
                node.__enter__()
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for node in reversed(self.nodes):  # the bootstrap node last: others leave gracefully
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def urls(self, database: str) -> list[URL]:
        """One URL per node for ``database``."""
        return [node.url(database) for node in self.nodes]


class PostgreSQL(_Server):
    """A PostgreSQL 15 cluster (``initdb``) on a free loopback port, run as the ``postgres``
    OS user (the server refuses root); trust authentication on loopback."""

    name = "postgresql"

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        require(str(POSTGRES_BIN / "initdb"), str(POSTGRES_BIN / "pg_ctl"), "runuser")
        super().__init__()
        self.port = free_ports(1)[0]
        self.datadir = self.directory / "data"
        self.options = dict(options or {})
        _give(self.directory, POSTGRES_USER)

    def _as_postgres(self, *command: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", POSTGRES_USER, "--", *command]
        return list(command)

    def start(self) -> None:
        subprocess.run(
            self._as_postgres(
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.directory}'",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "fsync": "off",  # a test server: durability is not under test
            "synchronous_commit": "off",
            **self.options,
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self._as_postgres(str(POSTGRES_BIN / "postgres"), "-D", str(self.datadir)),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until(f"postgres on port {self.port}", self.ready, self.process)

    def postmaster(self) -> int | None:
        """The postmaster's pid (``runuser`` does not pass SIGINT on to it)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def signal(self, how: signal.Signals) -> None:
        """Send ``how`` to the postmaster itself."""
        pid = self.postmaster()
        if pid is not None and self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)

    def stop(self) -> None:
        """Stop the server (fast shutdown: SIGINT rolls back open sessions)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGINT)
        _stop(self.process, how=signal.SIGINT)

    def url(self, database: str = "postgres") -> URL:
        """A URL of this server (user ``postgres``, trust) for ``database``."""
        return URL.create("postgresql+psycopg", "postgres", None, "127.0.0.1", self.port, database)

    def ready(self) -> bool:
        """Whether the server accepts queries."""
        engine = sa.create_engine(self.url(), poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                return True
        except sa.exc.DBAPIError:
            return False
        finally:
            engine.dispose()

    def create_database(self, name: str) -> URL:
        """A new empty database called ``name``."""
        engine = sa.create_engine(
            self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


class PostgreSQLStandby(PostgreSQL):
    """A hot standby of ``primary`` streaming its WAL: a base backup by ``pg_basebackup -R``
    (which writes ``primary_conninfo`` and ``standby.signal``) on a free loopback port.
    Started again after :meth:`stop`, it resumes from its datadir."""

    name = "standby"

    def __init__(self, primary: PostgreSQL, options: Mapping[str, str] | None = None) -> None:
        require(str(POSTGRES_BIN / "pg_basebackup"))
        super().__init__(options)
        self.primary = primary

    def start(self) -> None:
        if not self.datadir.exists():
            subprocess.run(
                self._as_postgres(
                    str(POSTGRES_BIN / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.primary.port),
                    "-U",
                    "postgres",
                    "-D",
                    str(self.datadir),
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                ),
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            settings = {
                "port": str(self.port),
                "unix_socket_directories": f"'{self.directory}'",
                "hot_standby_feedback": "on",
                "wal_receiver_status_interval": "1s",
                **self.options,
            }
            with (self.datadir / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._as_postgres(str(POSTGRES_BIN / "postgres"), "-D", str(self.datadir)),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        wait_until(f"standby on port {self.port}", self.ready, self.process)

    def kill(self) -> None:
        """Stop the standby abruptly: an immediate shutdown (SIGQUIT: every process exits at
        once, no restartpoint), as a crash looks to its clients."""
        self.signal(signal.SIGQUIT)
        _stop(self.process, timeout=30.0, how=signal.SIGQUIT)


def mariadb_replica(primary: MariaDB, replica: MariaDB) -> None:
    """Make ``replica`` (started with ``server_id`` of its own) replicate ``primary`` (started
    with ``log_bin``) by GTID from the primary's first transaction."""
    replica.execute(
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={primary.port}, "
        "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, "
        "MASTER_CONNECT_RETRY=1"
    )
    replica.execute("START SLAVE")


class PgBouncer(_Server):
    """PgBouncer on a free loopback port in front of ``server`` (any database of it), with
    ``pool_mode`` (default ``transaction``) and trust authentication."""

    name = "pgbouncer"

    def __init__(
        self, server: PostgreSQL, *, pool_mode: str = "transaction", pool_size: int = 10
    ) -> None:
        require(PGBOUNCER)
        super().__init__()
        self.server = server
        self.port = free_ports(1)[0]
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        _give(self.directory, POSTGRES_USER)

    def start(self) -> None:
        users = self.directory / "users.txt"
        users.write_text('"postgres" ""\n')
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.server.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.directory}\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"pool_mode = {self.pool_mode}\n"
            f"default_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.log}\n"
            f"pidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        for path in (users, config):
            _give(path, POSTGRES_USER)
        command = [PGBOUNCER, str(config)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", POSTGRES_USER, "--", *command]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(f"pgbouncer on port {self.port}", self.ready, self.process)

    def url(self, database: str) -> URL:
        """A URL of ``database`` through the pooler."""
        return URL.create("postgresql+psycopg", "postgres", None, "127.0.0.1", self.port, database)

    def ready(self) -> bool:
        """Whether the pooler accepts connections."""
        with contextlib.closing(socket.socket()) as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0


@contextlib.contextmanager
def started(*servers: _Server) -> Iterator[None]:
    """Start ``servers`` in order, stop them in reverse."""
    with contextlib.ExitStack() as stack:
        for server in servers:
            stack.enter_context(server)
        yield


PG_AUTOCTL = "/usr/bin/pg_autoctl"


class AutoFailover:
    """A pg_auto_failover formation on loopback: a monitor and two PostgreSQL nodes, each run
    by its own ``pg_autoctl`` keeper (as the ``postgres`` user) in one temporary directory.
    The monitor's health checks are tightened so that a dead primary is noticed in ~2 s."""

    def __init__(self) -> None:
        require(PG_AUTOCTL, str(POSTGRES_BIN / "pg_ctl"), "runuser")
        self.directory = Path(tempfile.mkdtemp(prefix="chatledger-autofailover-"))
        _give(self.directory, POSTGRES_USER)
        self.monitor_port, *self.ports = free_ports(3)
        self.keepers: dict[str, subprocess.Popen[bytes]] = {}
        self.env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.directory / "config"),
            "XDG_DATA_HOME": str(self.directory / "share"),
            "XDG_RUNTIME_DIR": str(self.directory / "run"),
            "PATH": f"{POSTGRES_BIN}:{os.environ.get('PATH', '')}",
            "PG_CONFIG": "/usr/bin/pg_config",
        }

    def _command(self, *arguments: str) -> list[str]:
        prefix = ["runuser", "-u", POSTGRES_USER, "--"] if os.geteuid() == 0 else []
        return [
            *prefix,
            "env",
            *(f"{k}={v}" for k, v in self.env.items() if k.startswith(("XDG", "PATH", "PG_"))),
            PG_AUTOCTL,
            *arguments,
        ]

    def _keeper(self, name: str, *arguments: str) -> None:
        with (self.directory / f"{name}.log").open("ab") as log:
            self.keepers[name] = subprocess.Popen(
                self._command(*arguments),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def monitor_url(self) -> URL:
        return URL.create(
            "postgresql+psycopg",
            "postgres",
            None,
            "127.0.0.1",
            self.monitor_port,
            "pg_auto_failover",
        )

    def _sql(self, url: URL, statement: str) -> Any:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                result = conn.execute(sa.text(statement))
                return result.all() if result.returns_rows else []
        finally:
            engine.dispose()

    def _ready(self, url: URL) -> bool:
        try:
            self._sql(url, "SELECT 1")
            return True
        except sa.exc.DBAPIError:
            return False

    def node_url(self, index: int, database: str = "postgres") -> URL:
        return URL.create(
            "postgresql+psycopg", "postgres", None, "127.0.0.1", self.ports[index], database
        )

    def states(self) -> dict[int, str]:
        """``{port: reported state}`` of the data nodes, as the monitor sees them."""
        rows = self._sql(
            self.monitor_url(), "SELECT nodeport, reportedstate FROM pgautofailover.node"
        )
        return {int(port): str(state) for port, state in rows}

    def wait_states(self, wanted: dict[int, str], timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.states() == wanted:
                    return
            except sa.exc.DBAPIError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"formation not in {wanted} after {timeout:.0f}s: {self.states()}")

    def __enter__(self) -> Self:
        try:
            common = [
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--pgctl",
                str(POSTGRES_BIN / "pg_ctl"),
            ]
            self._keeper(
                "monitor",
                "create",
                "monitor",
                "--pgdata",
                str(self.directory / "monitor"),
                "--pgport",
                str(self.monitor_port),
                *common,
                "--run",
            )
            deadline = time.monotonic() + START_TIMEOUT
            while not self._ready(self.monitor_url()):
                if time.monotonic() > deadline or self.keepers["monitor"].poll() is not None:
                    raise RuntimeError("the pg_auto_failover monitor did not start")
                time.sleep(0.2)
            for setting, value in (
                ("health_check_period", 500),
                ("health_check_timeout", 500),
                ("health_check_max_retries", 1),
                ("health_check_retry_delay", 200),
                ("node_considered_unhealthy_timeout", 1000),
                # How long the monitor waits for a dead primary to confirm its demotion
                # before the standby may take writes (30 s by default).
                ("primary_demote_timeout", 1000),
            ):
                self._sql(
                    self.monitor_url(), f"ALTER SYSTEM SET pgautofailover.{setting} = {value}"
                )
            self._sql(self.monitor_url(), "SELECT pg_reload_conf()")
            monitor = f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable"
            for index, port in enumerate(self.ports):
                self._keeper(
                    f"node{index + 1}",
                    "create",
                    "postgres",
                    "--pgdata",
                    str(self.directory / f"node{index + 1}"),
                    "--pgport",
                    str(port),
                    "--monitor",
                    monitor,
                    *common,
                    "--run",
                )
                if index == 0:
                    self.wait_states({port: "single"})
            self.wait_states({self.ports[0]: "primary", self.ports[1]: "secondary"})
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def kill(self, name: str) -> None:
        """Kill a node's keeper and its PostgreSQL at once (SIGKILL to the process group)."""
        keeper = self.keepers[name]
        pgdata = self.directory / name
        pid = None
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(keeper.pid, signal.SIGKILL)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        keeper.wait()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Throwaway servers: killed outright (a clean stop of three keepers takes ~10 s).
        for name in reversed(list(self.keepers)):
            self.kill(name)
        for pgdata in self.directory.glob("*/postmaster.pid"):
            with contextlib.suppress(OSError, ValueError, IndexError, ProcessLookupError):
                os.kill(int(pgdata.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.directory, ignore_errors=True)
