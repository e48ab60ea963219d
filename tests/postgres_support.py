"""A real PostgreSQL server for the tests, started by the tests themselves.

Debian's `postgresql` package provides the server binaries (`make test` installs it when run as root); this module
finds them, runs `initdb` and `pg_ctl` in a fresh temporary directory as an unprivileged user (PostgreSQL refuses
to run as root, and the suite usually runs as root here), on a free 127.0.0.1 port with its unix socket inside
that directory, and removes everything again at the end of the session. Where the binaries (or a user to run them
as) are missing, the tests that need the server skip and say which facility is missing and why.

Fixtures (registered in tests/conftest.py):
- `postgres_server` (session): the running `PostgresServer`.
- `postgres_url`: a `postgresql://` URL of a database of its own, created empty for each test.
"""

from __future__ import annotations

import functools
import itertools
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_BIN_ENV = "CODELOOP_PG_BIN"
"""Environment variable naming a directory that holds `initdb` and `pg_ctl`, to use instead of searching."""

_DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
_SERVER_TOOLS = ("initdb", "pg_ctl", "createdb")
# PostgreSQL will not start as root; the Debian package's own account comes first, `nobody` everywhere else.
_UNPRIVILEGED_USERS = ("postgres", "nobody")
_START_ATTEMPTS = 3  # a free port can be taken by someone else between choosing it and the server binding it


_WATCHDOG = """
import shutil, subprocess, sys
pg_ctl, data, base, uid, gid = sys.argv[1:]
sys.stdin.buffer.read()  # end of file: the test process is gone
as_server = {"user": int(uid), "group": int(gid), "extra_groups": []} if uid else {}
subprocess.run([pg_ctl, "stop", "--pgdata", data, "--mode", "immediate", "--wait"], capture_output=True, **as_server)
shutil.rmtree(base, ignore_errors=True)
"""


def _has_tools(directory: Path) -> bool:
    return all(os.access(directory / tool, os.X_OK) for tool in _SERVER_TOOLS)


def _version_key(directory: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin: the newest major version installed wins.
    return tuple(int(part) for part in re.findall(r"\d+", directory.parent.name))


def find_bin_dir() -> Path | None:
    """The directory holding the PostgreSQL server programs: $CODELOOP_PG_BIN, then PATH, then Debian's
    /usr/lib/postgresql/<version>/bin (the newest version). None when there is none."""
    override = os.environ.get(PG_BIN_ENV)
    if override:
        return Path(override) if _has_tools(Path(override)) else None
    on_path = shutil.which("initdb")
    if on_path and _has_tools(Path(on_path).parent):
        return Path(on_path).parent
    candidates = [Path(found) for found in sorted(Path("/").glob(_DEBIAN_GLOB.lstrip("/")))]
    candidates = [path for path in candidates if _has_tools(path)]
    return max(candidates, key=_version_key) if candidates else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    for name in _UNPRIVILEGED_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def postgres_problem() -> str | None:
    """Why the tests cannot start a PostgreSQL server here (None when they can)."""
    if not sys.platform.startswith("linux"):
        return f"the PostgreSQL test server is started the Debian way, on Linux; this is {sys.platform}"
    if find_bin_dir() is None:
        where = (
            f"${PG_BIN_ENV} ({os.environ[PG_BIN_ENV]})"
            if os.environ.get(PG_BIN_ENV)
            else f"PATH or {_DEBIAN_GLOB}"
        )
        return (
            f"PostgreSQL server programs ({', '.join(_SERVER_TOOLS)}) not found in {where}: install Debian's "
            "`postgresql` package (`make test` does so when run as root)"
        )
    if os.geteuid() == 0 and _unprivileged_user() is None:
        return (
            "PostgreSQL refuses to run as root and none of the users "
            f"{', '.join(_UNPRIVILEGED_USERS)} exists to run it as"
        )
    return None


def psycopg_problem() -> str | None:
    """Why codeloop cannot talk to PostgreSQL from this interpreter (None when it can)."""
    from codeloop._extras import install_hint, is_installed

    if not is_installed("psycopg"):
        return f"psycopg 3 (the codeloop[postgres] extra) is not installed: {install_hint('postgres')}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """One throwaway PostgreSQL cluster: `start()` it, hand out databases with `new_database()`, `stop()` it.

    Clients reach it over TCP on 127.0.0.1 with a password (scram-sha-256) made up for this server alone, so
    other local users cannot use it; the fixture's own administration goes through the unix socket.
    """

    superuser = "codeloop"

    def __init__(self, bin_dir: Path, *, timeout: float = 120) -> None:
        self.bin_dir = bin_dir
        self.timeout = timeout
        """Seconds each server program (initdb, pg_ctl, createdb) may take: initdb is slow on a loaded machine."""
        self.password = secrets.token_hex(16)
        self.port = 0
        self._names = itertools.count(1)
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None
        # Not pytest's tmp_path: its parent is private to root, and the server must own its directory.
        self.base = Path(tempfile.mkdtemp(prefix="codeloop-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "socket"
        self.log = self.base / "server.log"
        self._watchdog: subprocess.Popen[bytes] | None = None

    def _run(self, *argv: str, as_server: bool) -> subprocess.CompletedProcess[str]:
        user = self._run_as if as_server else None
        completed = subprocess.run(
            [str(self.bin_dir / argv[0]), *argv[1:]],
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            env={**os.environ, "LC_ALL": "C", "PGTZ": "UTC"},
            user=user.pw_uid if user else None,
            group=user.pw_gid if user else None,
            extra_groups=[] if user else None,
        )
        return completed

    def _check(self, completed: subprocess.CompletedProcess[str], what: str) -> None:
        if completed.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{what} failed ({completed.returncode}):\n{completed.stderr}{completed.stdout}{log}"
            )

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        self.socket_dir.mkdir()
        password_file = self.base / "password"
        password_file.write_text(self.password + "\n")
        if self._run_as is not None:
            for path in (self.base, self.socket_dir, password_file):
                os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
        self.base.chmod(0o700)
        self._start_watchdog()
        initdb = self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            self.superuser,
            "--pwfile",
            str(password_file),
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            as_server=True,
        )
        self._check(initdb, "initdb")
        password_file.unlink()
        for attempt in range(_START_ATTEMPTS):
            self.port = _free_port()
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "port": str(self.port),
                "unix_socket_directories": f"'{self.socket_dir}'",
                # Many concurrent writer processes are the point of several tests.
                "max_connections": "200",
                # A test cluster is thrown away: durability against power loss buys nothing here.
                "fsync": "off",
                "full_page_writes": "off",
            }
            with open(self.data / "postgresql.auto.conf", "a") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            started = self._run(
                "pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log), "--wait", "--timeout", "60",
                as_server=True,
            )  # fmt: skip
            if started.returncode == 0:
                return
            if attempt == _START_ATTEMPTS - 1 or "could not bind" not in self.log.read_text(errors="replace"):
                self._check(started, "pg_ctl start")

    def _start_watchdog(self) -> None:
        # A test process ended without its finalizers (pytest-timeout's os._exit, SIGKILL) must not leave a
        # server running: the watchdog waits for its stdin to close, which happens however this process ends.
        user = self._run_as
        ids = [str(user.pw_uid), str(user.pw_gid)] if user else ["", ""]
        # It runs as this process's user (the server's user may not be able to run this interpreter) and stops
        # the server as the server's user.
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(self.bin_dir / "pg_ctl"),
                str(self.data),
                str(self.base),
                *ids,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,  # not in the test's process group: a Ctrl-C there must not stop it first
        )

    def stop(self, mode: str = "fast", *, before_removal: Callable[[], object] | None = None) -> None:
        """Stop the server ("fast": open connections are cut; "immediate": without a last checkpoint) and delete
        its directory (after `before_removal`, e.g. unmounting something inside it)."""
        if self._watchdog is not None:  # stopping it ourselves: the watchdog has nothing left to do
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(
                    "pg_ctl", "stop", "--pgdata", str(self.data), "--mode", mode, "--wait", as_server=True
                )
        finally:
            try:
                if before_removal is not None:
                    before_removal()
            finally:
                shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The `postgresql://` URL of `database` on this server (TCP, with the password)."""
        return f"postgresql://{self.superuser}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        created = self._run(
            "createdb", "--host", str(self.socket_dir), "--port", str(self.port), "--username", self.superuser, name,
            as_server=False,
        )  # fmt: skip
        self._check(created, f"createdb {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own (skips, saying why, where one cannot be started)."""
    problem = postgres_problem()
    if problem is not None:
        pytest.skip(problem)
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server (skips where psycopg is missing)."""
    problem = psycopg_problem()
    if problem is not None:
        pytest.skip(problem)
    return postgres_server.new_database()
