"""The PostgreSQL server the tests start for themselves: real, unprivileged, private, and gone afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tests.postgres_support import PostgresServer, find_bin_dir, postgres_problem, psycopg_problem

pytestmark = [
    pytest.mark.skipif(
        (postgres_problem() or psycopg_problem()) is not None,
        reason=postgres_problem() or psycopg_problem() or "PostgreSQL is available",
    ),
    # Starting a server (initdb) and many client processes: minutes, not seconds, on a loaded 2-core machine.
    pytest.mark.timeout(600),
]


def test_each_test_gets_an_empty_database_on_a_real_server(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as connection:
        version = connection.execute("SHOW server_version_num").fetchone()
        tables = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        data_directory = connection.execute("SHOW data_directory").fetchone()
    assert version is not None and int(version[0]) >= 100000
    assert tables == (0,)
    # The cluster lives in the fixture's temporary directory, not in a system cluster that happened to run.
    assert data_directory == (str(postgres_server.data),)
    assert postgres_server.new_database() != postgres_url


def test_the_server_runs_unprivileged(postgres_server: PostgresServer) -> None:
    pid = int((postgres_server.data / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0


def test_a_wrong_password_is_refused(postgres_url: str) -> None:
    import psycopg

    parts = urlsplit(postgres_url)
    wrong = postgres_url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)


def test_stop_removes_the_cluster_and_frees_the_port() -> None:
    bin_dir = find_bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10):
            pass
    finally:
        server.stop()
    assert not server.base.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=10).close()


def test_a_killed_test_process_leaves_no_server_behind(tmp_path: Path) -> None:
    # pytest-timeout ends a hung run with os._exit and SIGKILL skips every finalizer: the watchdog cleans up.
    script = tmp_path / "start_and_die.py"
    script.write_text(
        "import os, sys\n"
        "from tests.postgres_support import PostgresServer, find_bin_dir\n"
        "server = PostgresServer(find_bin_dir())\n"
        "server.start()\n"
        "print(server.base, (server.data / 'postmaster.pid').read_text().split()[0], flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    died = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=110)
    assert died.returncode == -9, died.stderr
    base, pid = died.stdout.split()
    deadline = time.monotonic() + 60
    while (Path(base).exists() or Path(f"/proc/{pid}").exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not Path(base).exists()
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
