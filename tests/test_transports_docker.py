"""DockerExecutor: the transport logic against the real worker (a fake container whose attached stdio runs the
worker as a local subprocess, multiplexed the way Docker does), and real Docker behind CODELOOP_DOCKER_TESTS=1.

The fake tests check what codeloop does (container options, attach-before-start, stream demultiplexing, tool
calls over the socket, restarts and cleanup on timeout, crash, errors and Ctrl-C); they do not test Docker.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from tests.transport_fakes import FakeDockerClient, exercise_worker

from codeloop.errors import ExecutionError
from codeloop.executors import DockerExecutor
from codeloop.executors.worker.bundle import BOOTSTRAP


@pytest.fixture
def client() -> FakeDockerClient:
    return FakeDockerClient()


def test_the_worker_runs_over_the_multiplexed_attach_socket(client: FakeDockerClient) -> None:
    with DockerExecutor(client=client, timeout=5) as executor:
        exercise_worker(executor)
        assert len(client.created) == 1
        container = client.created[0]
        assert container.command == ["python3", "-I", "-c", BOOTSTRAP]
    assert container.removed


def test_the_container_is_locked_down(client: FakeDockerClient) -> None:
    with DockerExecutor(client=client, image="my/python:3.12", max_memory_mb=512, pids_limit=32) as executor:
        executor.run("1")
        options = client.created[0].options
        assert client.created[0].image == "my/python:3.12"
    assert options["network_disabled"] is True and options["read_only"] is True
    assert options["cap_drop"] == ["ALL"] and options["security_opt"] == ["no-new-privileges"]
    assert options["user"] == "65534:65534" and options["mem_limit"] == "512m" and options["pids_limit"] == 32
    assert options["stdin_open"] is True and options["tty"] is False
    assert "codeloop.executor" in options["labels"] and options["environment"] == {"HOME": "/tmp"}


def test_a_timeout_replaces_the_container(client: FakeDockerClient) -> None:
    with DockerExecutor(client=client, timeout=1) as executor:
        executor.run("kept = 1")
        started = time.monotonic()
        with pytest.raises(ExecutionError, match="time limit of 1 seconds"):
            executor.run("while True:\n    pass")
        assert time.monotonic() - started < 5
        assert client.created[0].removed and len(client.live()) == 0
        assert executor.run("'kept' in globals()").output is False
        assert len(client.created) == 2 and len(client.live()) == 1
    assert client.live() == []


def test_a_dead_worker_is_reported_with_the_containers_exit_status(client: FakeDockerClient) -> None:
    with DockerExecutor(client=client, timeout=5) as executor:
        with pytest.raises(ExecutionError, match="died.*exited with status 3"):
            executor.run("import os\nos._exit(3)")
        assert executor.run("2 + 2").output == 4


def test_stderr_frames_are_kept_apart_from_the_protocol(client: FakeDockerClient) -> None:
    with DockerExecutor(client=client, timeout=5) as executor:
        executor.run("import os\nos.write(1, b'raw bytes on fd 1\\n')\nos.write(2, b'and on fd 2\\n')")
        assert executor.run("'still fine'").output == "still fine"


@pytest.mark.parametrize("failure", [RuntimeError("engine error"), KeyboardInterrupt()])
def test_no_container_is_left_behind_when_starting_fails(
    client: FakeDockerClient, failure: BaseException
) -> None:
    client.fail_on_start = failure
    executor = DockerExecutor(client=client)
    with pytest.raises(type(failure)):
        executor.run("1")
    assert client.created and client.live() == []
    executor.close()


def test_ctrl_c_during_a_step_removes_the_container(client: FakeDockerClient) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with DockerExecutor(client=client) as executor:
        executor.send_tools({"interrupt": interrupt})
        with pytest.raises(KeyboardInterrupt):
            executor.run("interrupt()")
        assert client.live() == []


def test_missing_sdk_is_a_clear_error_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)  # how Python marks a module that cannot be imported
    with pytest.raises(ImportError, match=r'pip install "codeloop\[docker\]"'):
        DockerExecutor()


@pytest.mark.skipif(
    os.environ.get("CODELOOP_DOCKER_TESTS") != "1", reason="real Docker: set CODELOOP_DOCKER_TESTS=1"
)
def test_real_docker() -> None:
    import docker

    client = docker.from_env()
    image = os.environ.get("CODELOOP_DOCKER_IMAGE")
    with DockerExecutor(client=client, image=image, timeout=5) as executor:
        exercise_worker(executor)
        label = executor.instance_label
        assert (
            executor.run(
                "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    r = 'online'\nexcept OSError:\n    r = 'offline'\nr"
            ).output
            == "offline"
        )
        with pytest.raises(ExecutionError, match="time limit"):
            executor.run("while True: pass")
        assert executor.run("1").output == 1
    assert client.containers.list(all=True, filters={"label": f"codeloop.executor={label}"}) == []


def test_a_missing_image_is_pulled_first() -> None:
    client = FakeDockerClient(images=set())
    with DockerExecutor(client=client, image="python:3.12-slim") as executor:
        assert executor.run("1 + 1").output == 2
    assert client.images.pulled == ["python:3.12-slim"]
