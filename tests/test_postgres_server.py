"""The PostgreSQL server the tests start for themselves: real, unprivileged, private, and gone afterwards."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest
from tests.postgres_support import PostgresServer, find_bin_dir, postgres_problem, psycopg_problem

pytestmark = pytest.mark.skipif(
    (postgres_problem() or psycopg_problem()) is not None,
    reason=postgres_problem() or psycopg_problem() or "PostgreSQL is available",
)


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
