"""Batches and evals on a real two-node Ray cluster started here (`ray start --head` plus a second `ray start`).

On a scripted model, the records equal a single-process run's; the runs spread over both nodes; a rerun runs
nothing already recorded; a run whose runner dies every time is reported, not lost; and when the second node is
killed mid-batch its runs are sent again to the head node, so every task is recorded exactly once.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codeloop import CodeAgent, LocalExecutor, tool
from codeloop.batch import run_batch
from codeloop.evals import run_eval, tool_tasks
from codeloop.evals.scripted import reference_replies
from codeloop.jobs import RunsLostError
from codeloop.models import model as model_from_spec
from codeloop.store.jobs import JOB_RECORD_EVENT, StoreResultSink
from codeloop.store.opening import open_store
from codeloop.store.recorder import run_label
from codeloop.testing import ScriptedLLMServer, ScriptRequest
from sandbox_support import bwrap_problem

SRC = str(Path(__file__).resolve().parent.parent / "src")
pytestmark = pytest.mark.timeout(
    400
)  # starting two Ray nodes on a busy 2-core machine can take a minute or two
VOLATILE = ("seconds", "run_id")
"""Record fields that differ between any two runs of the same task (wall time, a fresh id)."""


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen[bytes]
    second: subprocess.Popen[bytes]
    marks: Path
    """Each run made on the cluster leaves a file here named after its node (see `_marking`)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _started(node: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether `ray start --block` says every process of its node is up (an error naming the log if it failed)."""
    if node.poll() is not None:
        raise RuntimeError(f"a Ray node did not start:\n{log.read_text(errors='replace')[-3000:]}")
    # A node joining before the head is fully up can time out; --block prints this once its node is up.
    return b"will now block" in log.read_bytes()


def _session_pids(session: int) -> list[int]:
    """The processes of a session (a node's `ray start --block` and everything it started, workers included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:
                pids.append(int(entry.name))
    return pids


def _start_node(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Ray node started by `ray start --block` (in a session of its own, so that it can be killed whole).

    Ray gives a node 30 s to register with the head; on a loaded 2-core machine that can pass, so a node that
    timed out is started again (a few times) before the fixture gives up."""
    attempts = 4
    for attempt in range(1, attempts + 1):
        node = subprocess.Popen(
            command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait(functools.partial(_started, node, log), log.stem, 300)
            return node
        except RuntimeError:
            _kill_node(node)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _kill_node(node: subprocess.Popen[bytes]) -> None:
    for pid in _session_pids(node.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.wait(timeout=30)


def _wait(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


_NODE_OPTIONS = [
    "--include-log-monitor=false",
    "--num-cpus=1",
    "--object-store-memory=100000000",
    "--disable-usage-stats",
    "--block",
]


def _start_cluster(temp: Path, marks: Path) -> Cluster:
    """A head node and a second node (with a `second_node` resource), and this process connected to them."""
    import ray

    ray_cli = Path(sys.executable).parent / "ray"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    head = _start_node(
        [str(ray_cli), "start", "--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}",
         *_NODE_OPTIONS], env, temp / "head.log",
    )  # fmt: skip
    try:
        second = _start_node(
            [str(ray_cli), "start", f"--address=127.0.0.1:{port}", '--resources={"second_node": 1}',
             *_NODE_OPTIONS], env, temp / "second.log",
        )  # fmt: skip
    except BaseException:
        _kill_node(head)
        raise
    cluster = Cluster(f"127.0.0.1:{port}", head, second, marks)
    try:
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        _wait(lambda: sum(n["Alive"] for n in ray.nodes()) == 2, "the second node to join")
        # Alive is not yet schedulable: until the scheduler sees the second node's resources, a soft node
        # affinity falls back to the head and every run lands there (seen in 2 of 3 runs at load 30).
        _wait(lambda: ray.available_resources().get("second_node", 0) >= 1, "the second node's resources")
    except BaseException:
        _stop_cluster(cluster)
        raise
    return cluster


def _stop_cluster(cluster: Cluster) -> None:
    """Disconnect this process (a driver whose cluster is gone exits after a minute), then kill every node."""
    import ray

    ray.shutdown()
    for node in (cluster.second, cluster.head):
        _kill_node(node)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'codeloop[ray]')")
    ray.cloudpickle.register_pickle_by_value(
        sys.modules[__name__]
    )  # the nodes cannot import this test module
    # Short: Ray's unix sockets live under the temp dir, and a socket path may not exceed 107 bytes.
    temp = Path(tempfile.mkdtemp(prefix="clray", dir="/tmp"))
    try:
        cluster = _start_cluster(temp, temp / "marks")  # `_restart` finds the temp dir as the marks' parent
        try:
            yield cluster
        finally:
            _stop_cluster(cluster)  # the one a test restarted, if one did
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _restart(cluster: Cluster) -> None:
    """Stop every node of `cluster` and start a new cluster in its place (a new address)."""
    _stop_cluster(cluster)
    fresh = _start_cluster(cluster.marks.parent, cluster.marks)
    cluster.address, cluster.head, cluster.second = fresh.address, fresh.head, fresh.second


# --- a scripted model and agents that run on any node --------------------------------------------------------------


def _number_in(request: ScriptRequest) -> int:
    text = "\n".join(str(m.content) for m in request.messages)
    return int(text.split("Compute task number ")[1].split(".")[0])


def _three_steps(request: ScriptRequest, delay: float = 0.0) -> str:
    """Three steps per run; the answer depends on the task, so a record cannot come from another task's run."""
    time.sleep(delay)
    number, steps = _number_in(request), sum(m.role == "assistant" for m in request.messages)
    if number == 99:
        return "Thought: stop here.\n```python\ncrash()\n```"
    return [
        "Thought: start.\n```python\nx = 1\nprint(x)\n```",
        f"Thought: add.\n```python\nx += {number}\nprint(x)\n```",
        "Thought: done.\n```python\nfinal_answer(x * 10)\n```",
    ][min(steps, 2)]


@tool
def crash() -> str:
    """Ends the process running the agent at once, as a node dying would.

    Returns:
        Nothing: the process is gone.
    """
    os._exit(1)


def _marking(marks: Path, make: Any) -> Any:
    """An agent factory that first leaves a file named after the Ray node it runs on."""

    def factory() -> Any:
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "driver"
        marks.mkdir(parents=True, exist_ok=True)
        (marks / f"{node}-{uuid.uuid4().hex}").touch()
        return make()

    return factory


def _agent_factory(base_url: str, executor: Any = "local", store: str | None = None) -> Any:
    model = model_from_spec("openai:scripted", api_base=base_url, api_key="k")
    return lambda: CodeAgent([crash], model, executor=executor, max_steps=4, verbosity_level=0, store=store)


def _tasks(numbers: Any) -> list[dict[str, Any]]:
    return [{"id": f"t{n}", "task": f"Compute task number {n}.", "metadata": {"n": n}} for n in numbers]


def _stable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _nodes_marked(marks: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for mark in marks.iterdir() if marks.exists() else ():
        node = mark.name.rsplit("-", 1)[0]
        counts[node] = counts.get(node, 0) + 1
    return counts


# --- the tests -----------------------------------------------------------------------------------------------------


def test_a_batch_on_two_nodes_records_what_one_process_records_and_a_rerun_runs_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    tasks = _tasks(range(12))
    with ScriptedLLMServer(_three_steps) as server:
        alone = run_batch(
            _agent_factory(server.base_url), tasks, concurrency=4, output=tmp_path / "one.jsonl"
        )
        marks = tmp_path / "marks"
        factory = _marking(marks, _agent_factory(server.base_url))
        spread = run_batch(factory, tasks, concurrency=3, output=tmp_path / "ray.jsonl", ray=cluster.address)
        calls = server.call_count
        again = run_batch(factory, tasks, concurrency=3, output=tmp_path / "ray.jsonl", ray=cluster.address)
        assert server.call_count == calls  # everything was recorded: the rerun ran nothing
    assert all(r["success"] and r["output"] == (1 + int(r["id"][1:])) * 10 for r in spread)
    in_file = sorted(_lines(tmp_path / "ray.jsonl"), key=lambda r: int(r["id"][1:]))  # written as runs end
    assert _stable(spread) == _stable(alone) == _stable(in_file) == _stable(again)
    by_node = _nodes_marked(marks)
    assert len(by_node) == 2 and sum(by_node.values()) == 12, by_node  # both nodes ran some of the runs


def _stored(store: Any, label: str) -> list[dict[str, Any]]:
    """What the store holds of the runs labelled `label` (one JobRecord each), in task order, without what
    differs between any two runs of the same task (ids, times, the recording process)."""
    runs = sorted(store.list_runs(label=label), key=lambda run: run.task)
    rows = []
    for run in runs:
        kept = [e.data for e in store.events(run.run_id) if e.type == JOB_RECORD_EVENT]
        assert len(kept) == 1 and kept[0]["run_id"] == run.run_id, (run.run_id, kept)
        fields = {
            k: v
            for k, v in vars(run).items()
            if k not in ("run_id", "label", "started_at", "ended_at", "owner")
        }
        rows.append({**fields, "job_record": _stable(kept)[0]})
    return rows


def test_runs_recorded_on_the_nodes_carry_the_label_and_parent_run_a_single_process_batch_gives_them(
    cluster: Cluster, tmp_path: Path, postgres_url: str
) -> None:
    # The batches are started by a tool of an agent recording into the same (Postgres) store, as an agent that
    # launches batches would: each batch's runs are children of that agent's run.
    tasks = _tasks(range(6))
    launched = "```python\ncounts = [launch('one'), launch('ray'), launch('ray')]\nprint(counts)\n```"
    with ScriptedLLMServer(_three_steps) as server, \
            ScriptedLLMServer([launched, "```python\nfinal_answer(counts)\n```"]) as parent_server:  # fmt: skip

        @tool
        def launch(where: str) -> int:
            """Runs the batch in this process ('one') or on the Ray cluster ('ray'), labelled batch:WHERE.

            Args:
                where: 'one' or 'ray'.
            """
            make = _agent_factory(server.base_url, store=postgres_url)  # fresh: a used model holds a client
            with run_label(f"batch:{where}"):
                return len(run_batch(make, tasks, concurrency=2, output=tmp_path / f"{where}.jsonl",
                                     sinks=[StoreResultSink(postgres_url)],
                                     ray=cluster.address if where == "ray" else None))  # fmt: skip

        parent_model = model_from_spec("openai:scripted", api_base=parent_server.base_url, api_key="k")
        parent = CodeAgent([launch], parent_model, executor=LocalExecutor(timeout=None), store=postgres_url,
                           verbosity_level=0)  # fmt: skip
        result = parent.run("Launch the batches.", return_full_result=True)
        calls = server.call_count
    assert result.state == "success" and result.output == [6, 6, 6], result.steps[1].error
    assert calls == 2 * 6 * 3  # the second Ray batch (a rerun) ran nothing
    store = open_store(postgres_url)
    one, on_ray = _stored(store, "batch:one"), _stored(store, "batch:ray")
    assert (
        len(one) == 6 and one == on_ray
    )  # the same runs, each once with its record; none added by the rerun
    assert {row["parent_run_id"] for row in on_ray} == {result.run_id}
    assert len(store.children(result.run_id)) == 12  # 6 in this process, 6 on the nodes, none from the rerun


def test_codeloop_eval_with_ray_and_a_sandbox_pool_per_node_scores_as_one_process(
    cluster: Cluster, tmp_path: Path
) -> None:
    if bwrap_problem():
        pytest.skip(bwrap_problem())
    tasks = tool_tasks()[:6]
    names = ",".join(task.name for task in tasks)
    out = tmp_path / "eval.jsonl"
    with ScriptedLLMServer(reference_replies(tasks)) as server:
        alone = run_eval(tasks, model_from_spec("openai:scripted", api_base=server.base_url, api_key="k"),
                         executor="sandbox", concurrency=4)  # fmt: skip
        args = [sys.executable, "-m", "codeloop.cli", "eval", "builtin", "--tasks", names, "--model",
                "openai:scripted", "--api-base", server.base_url, "--api-key", "k", "--executor", "sandbox",
                "--concurrency", "3", "--output", str(out), "--no-plot", "--no-progress", "--ray", cluster.address]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": SRC}
        done = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
        assert done.returncode == 0, done.stderr
        calls = server.call_count
        again = subprocess.run(args, capture_output=True, text=True, timeout=240, env=env)
        assert again.returncode == 0 and server.call_count == calls, again.stderr
    assert "6/6" in done.stdout, done.stdout
    order = [r["key"] for r in alone]
    recorded = sorted(_lines(out), key=lambda r: order.index(r["key"]))  # written as runs end
    assert all(r["success"] for r in recorded) and len(recorded) == 12
    without_config = [{k: v for k, v in r.items() if k != "config"} for r in _stable(recorded)]
    assert without_config == [{k: v for k, v in r.items() if k != "config"} for r in _stable(alone)]
    assert recorded[0]["config"] == {"model": "openai:scripted", "executor": "sandbox", "max_steps": 8}


def test_a_run_that_kills_its_runner_each_time_is_reported_and_the_others_are_recorded(
    cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    with ScriptedLLMServer(_three_steps) as server:
        with pytest.raises(RunsLostError) as caught:
            run_batch(_agent_factory(server.base_url), _tasks([1, 2, 99, 3]), concurrency=1, output=out,
                      ray=cluster.address)  # fmt: skip
    assert list(caught.value.lost) == ["t99"] and "died 3 times" in caught.value.lost["t99"]
    assert "t99" in str(caught.value) and "run the same batch again" in str(caught.value)
    assert sorted(r["id"] for r in _lines(out)) == ["t1", "t2", "t3"]
    assert [r["id"] for r in caught.value.records] == ["t1", "t2", "t3"]


def test_a_batch_whose_cluster_is_stopped_continues_on_a_new_cluster_and_runs_nothing_twice(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The first eight runs finish; the model holds the replies of the others until the whole cluster is gone.
    tasks_file, out = tmp_path / "tasks.jsonl", tmp_path / "out.jsonl"
    tasks_file.write_text("".join(json.dumps(task) + "\n" for task in _tasks(range(16))))
    cluster_gone = threading.Event()
    asked: list[int] = []  # the task of each model call

    def held(request: ScriptRequest) -> str:
        number = _number_in(request)
        asked.append(number)
        if number >= 8:
            cluster_gone.wait(timeout=300)
        return _three_steps(request)

    env = {**os.environ, "PYTHONPATH": SRC}
    with ScriptedLLMServer(held) as server:

        def batch() -> list[str]:
            return [sys.executable, "-m", "codeloop.cli", "batch", str(tasks_file), "--model", "openai:scripted",
                    "--api-base", server.base_url, "--api-key", "k", "--concurrency", "2", "--output", str(out),
                    "--no-progress", "--ray", cluster.address]  # fmt: skip

        driver = subprocess.Popen(batch(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: out.exists() and len(_lines(out)) == 8, "the first eight runs", 240)
            _wait(lambda: any(n >= 8 for n in asked), "a held run in flight")
            # The machines go down: the cluster, and the driver with it (left alone, a driver whose cluster is
            # gone waits for Ray to give up reconnecting before it exits).
            _stop_cluster(cluster)
        finally:
            driver.kill()
            driver.wait(timeout=60)
            cluster_gone.set()
        assert sorted(r["id"] for r in _lines(out)) == [f"t{n}" for n in range(8)]
        _restart(cluster)
        asked_before = len(asked)
        done = subprocess.run(batch(), env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr
    recorded = _lines(out)
    assert sorted(r["id"] for r in recorded) == sorted(f"t{n}" for n in range(16))  # each exactly once
    assert all(r["success"] and r["output"] == (1 + int(r["id"][1:])) * 10 for r in recorded)
    assert set(asked[asked_before:]) == set(range(8, 16))  # none of the recorded runs ran again


def test_when_the_second_node_dies_mid_batch_its_runs_finish_on_the_head_and_none_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Runs last: the cluster has one node afterwards.
    import ray

    second = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "second_node" in n["Resources"])
    marks = tmp_path / "marks"
    out = tmp_path / "out.jsonl"
    tasks = _tasks(range(16))

    def kill_when_the_second_node_is_busy() -> None:
        _wait(lambda: _nodes_marked(marks).get(second, 0) >= 2, "runs on the second node")
        _kill_node(cluster.second)

    killer = threading.Thread(target=kill_when_the_second_node_is_busy)
    with ScriptedLLMServer(lambda request: _three_steps(request, delay=0.2)) as server:
        killer.start()
        records = run_batch(_marking(marks, _agent_factory(server.base_url)), tasks, concurrency=2, output=out,
                            ray=cluster.address)  # fmt: skip
        killer.join()
    assert cluster.second.poll() is not None
    recorded = _lines(out)
    assert sorted(r["id"] for r in recorded) == sorted(t["id"] for t in tasks)  # each exactly once
    assert all(r["success"] and r["output"] == (1 + int(r["id"][1:])) * 10 for r in records)
    assert sum(_nodes_marked(marks).values()) > 16  # the runs in flight on the dead node were run again


# Last: with `ray` hidden from sys.modules, a Ray cluster started afterwards in this process placed every
# run on the head node (the two-node tests failed only when this test ran before them).
def test_without_ray_installed_asking_for_it_fails_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # Python's marker for a module that cannot be imported
    out = tmp_path / "out.jsonl"
    with pytest.raises(ImportError, match=r'pip install "codeloop\[ray\]"'):
        run_batch(lambda: None, _tasks([1]), output=out, ray=True)
    assert not out.exists()
