"""Running `codeloop.jobs` runs on a Ray cluster: one runner actor per node, the recording stays with the caller.

`run_batch(..., ray=ADDRESS)`, `run_eval(..., ray=ADDRESS)` and `codeloop batch|eval --ray [ADDRESS]` come here.
The caller (the *driver*) keeps everything that makes a batch resumable: it reads the results file, picks the
runs not yet recorded, and appends each record (and hands it to the sinks, e.g. a run store) as it comes back.
Only the runs travel: each job is pickled (with `ray.cloudpickle`, so closures and lambdas go too) and run by an
async actor placed on a node, `concurrency` runs at once per node, each on a fresh agent exactly as in one process
(`codeloop.jobs._run_one`), with the run-store label and parent run it would have in the driver
(`codeloop.store.recorder.run_context`). So the records, and the runs a shared store holds, equal a
single-process run's, and a rerun after a crash of the driver or a restart of the cluster runs only what is
missing.

When a node (or a runner's process) dies mid-run, Ray restarts its runner (on another node if that node is gone)
and the driver sends the runs that were in flight again, up to `max_attempts` times each; a run that still has no
result is reported in `RunsLostError`, never silently dropped, and runs again on the next rerun.

Ray is an optional dependency (`pip install "codeloop[ray]"`), imported only when a run asks for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._extras import install_hint, is_installed
from .jobs import Job, RemoteRunner, _run_one

if TYPE_CHECKING:
    from .executors.transports.sandbox_pool import PooledSandboxExecutor, SandboxPool

__all__ = ["NodeSandboxPool", "ray_available", "ray_runner", "run_on_ray"]

DEFAULT_MAX_ATTEMPTS = 3
"""Times a run is sent to a runner before it is reported lost (its runner died each time)."""


_REVIVE_TRIES = 60
_REVIVE_PAUSE_SECONDS = 1.0
"""A failed runner is asked every second, for a minute, whether Ray has it back (Ray notices a dead node in ~30 s)."""


def ray_available() -> str | None:
    """None when Ray can be imported, otherwise what to install (checked without importing Ray)."""
    if is_installed("ray"):
        return None
    return f"running on a Ray cluster needs Ray: {install_hint('ray')}"


def _import_ray() -> Any:
    missing = ray_available()
    if missing:
        raise ImportError(missing)
    import ray

    return ray


class NodeSandboxPool:
    """A `SandboxPool` per process, started on first use by the process that uses it: the sandbox pool of a node.

    Give it as a CodeAgent's executor in an agent factory run on Ray (`CodeAgent(executor=NodeSandboxPool(8))`):
    it pickles as its size and options only, so each runner (one per node) builds one pool of its own and every
    run on that node takes a ready sandbox from it. In a single process it is a plain pool shared by the agents
    using it. `codeloop batch|eval --executor sandbox --ray` use one, sized to `--concurrency`.

    Args:
        size: Sandboxes each process keeps ready (see `SandboxPool`).
        **options: `SandboxExecutor` options for every sandbox of the pool.
    """

    _pools: dict[tuple[int, str], SandboxPool] = {}
    _lock = threading.Lock()

    def __init__(self, size: int = 4, **options: Any) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"NodeSandboxPool size must be a positive integer (sandboxes kept ready), got {size!r}"
            )
        from .executors.transports.sandbox import SandboxExecutor

        SandboxExecutor(**options)  # refuses bad options here, not on a node after the batch started
        self.size = size
        self.options = dict(options)

    def _pool(self) -> SandboxPool:
        from .executors.transports.sandbox_pool import SandboxPool

        key = (self.size, repr(sorted(self.options.items())))
        with self._lock:
            pool = self._pools.get(key)
            if pool is None or pool._closed:
                pool = self._pools[key] = SandboxPool(self.size, **self.options)
            return pool

    def new_executor(self) -> PooledSandboxExecutor:
        """An executor taking a ready sandbox from this process's pool (started on the first call)."""
        return self._pool().new_executor()

    @classmethod
    def close_all(cls) -> None:
        """Close the pools this process started (a runner does so when the batch ends)."""
        with cls._lock:
            pools = list(cls._pools.values())
            cls._pools.clear()
        for pool in pools:
            pool.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"size": self.size, "options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.size = state["size"]
        self.options = state["options"]

    def __repr__(self) -> str:
        return f"NodeSandboxPool(size={self.size})"


class _Runner:
    """The runner actor of one node: runs pickled jobs on its event loop, several at once (an async actor)."""

    def __init__(self) -> None:
        import ray

        self.node_id = ray.get_runtime_context().get_node_id()

    async def run(
        self, blob: bytes, config: dict[str, Any], context: dict[str, str | None]
    ) -> tuple[str, dict[str, Any] | None]:
        from ray import cloudpickle

        from .store.recorder import carried_run_context

        job = cloudpickle.loads(blob)

        async def run_in_context() -> dict[str, Any] | None:
            with carried_run_context(context):
                return await _run_one(job, config)

        # A task of its own: its context is a copy, so the label set for this run is not seen by the runs that
        # share this actor's event loop.
        return self.node_id, await asyncio.ensure_future(run_in_context())

    async def ping(self) -> str:
        return self.node_id

    async def close(self) -> None:
        await asyncio.to_thread(NodeSandboxPool.close_all)


def ray_runner(address: str | bool) -> RemoteRunner:
    """What `codeloop.jobs.arun_jobs(remote=...)` takes to run on the Ray cluster at `address` (see `run_on_ray`).

    Raises:
        ImportError: Ray is not installed (said now, before any results file is read or any run starts).
    """
    missing = ray_available()
    if missing:
        raise ImportError(missing)

    async def run(
        jobs: Sequence[Job],
        config: dict[str, Any],
        concurrency: int,
        on_record: Callable[[dict[str, Any]], None],
    ) -> dict[str, str]:
        return await run_on_ray(jobs, config, address=address, concurrency=concurrency, on_record=on_record)

    return run


def _pickled(ray: Any, jobs: Sequence[Job]) -> list[bytes]:
    """Every job pickled now, so a job that cannot travel is refused before any run starts."""
    blobs = []
    for job in jobs:
        try:
            blobs.append(ray.cloudpickle.dumps(job))
        except Exception as exc:
            raise TypeError(
                f"run {job.key!r} cannot be sent to the Ray cluster: its agent factory or scorer holds something "
                f"that cannot be pickled ({type(exc).__name__}: {exc}); build such objects (an open client, a "
                "lock) inside the agent factory instead"
            ) from exc
    return blobs


def _connect(ray: Any, address: str | bool) -> bool:
    """Connect to the cluster (or start a local one for `address=True` with none running); whether we did."""
    if ray.is_initialized():
        return False
    ray.init(
        address=None if address is True else str(address),
        logging_level=logging.WARNING,
        log_to_driver=False,  # the runs' outcomes come back as records; worker chatter would garble the progress bar
        configure_logging=False,
    )
    return True


def _start_runners(ray: Any, concurrency: int) -> list[Any]:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    runner = ray.remote(_Runner)
    nodes = [node["NodeID"] for node in ray.nodes() if node.get("Alive")]
    return [
        runner.options(
            num_cpus=0,  # runs mostly wait on the model: the per-node limit is `concurrency`, not CPU slots
            max_concurrency=concurrency,
            max_restarts=-1,  # a runner whose process died comes back on its node; one whose node died is gone
            max_task_retries=0,  # the driver resends, so that it can count attempts and report what is lost
            # strict: a soft affinity let Ray put every runner on the head while a joined node was still settling
            # (all runs of a two-node batch ran on one node); runs of a dead node's runner go to the others
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
        ).remote()
        for node in nodes
    ]


async def run_on_ray(
    jobs: Sequence[Job],
    config: dict[str, Any],
    *,
    address: str | bool,
    concurrency: int,
    on_record: Callable[[dict[str, Any]], None],
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> dict[str, str]:
    """Run `jobs` on the Ray cluster at `address` (True: Ray's default), `concurrency` at once on each node.

    Each finished run's record is passed to `on_record` on this event loop as it comes back. Returns the runs
    that got no result, by key, with the reason (their runner died `max_attempts` times, or the run was
    interrupted); the caller reports them. Ray is connected here if it is not already, and disconnected after.

    Raises:
        ImportError: Ray is not installed.
        TypeError: a job cannot be pickled (before anything runs).
    """
    from .store.recorder import run_context

    ray = _import_ray()
    blobs = _pickled(ray, jobs)
    context = run_context()  # the label and parent run the runs would have here, recorded with them there
    connected_here = _connect(ray, address)
    runners: list[Any] = []
    try:
        runners = _start_runners(ray, concurrency)
        slots: asyncio.Queue[Any] = asyncio.Queue()
        for _ in range(concurrency):  # interleaved, so that work spreads over the nodes before any fills up
            for runner in runners:
                slots.put_nowait(runner)
        live_slots = [len(runners) * concurrency]
        reviving: set[asyncio.Task[None]] = set()
        lost: dict[str, str] = {}

        async def give_back_when_alive(runner: Any) -> None:
            # A runner that failed is given no run until Ray has it back (restarted, elsewhere if its node is
            # gone): resending at once would only fail again, and spend the run's attempts in a few seconds.
            for _ in range(_REVIVE_TRIES):
                try:
                    await runner.ping.remote()
                except ray.exceptions.ActorUnavailableError:
                    await asyncio.sleep(_REVIVE_PAUSE_SECONDS)
                    continue
                except ray.exceptions.RayError:
                    break
                slots.put_nowait(runner)
                return
            live_slots[0] -= 1
            if live_slots[0] == 0:
                slots.put_nowait(
                    None
                )  # no runner left: the runs still waiting are reported, not left hanging

        async def drive(job: Job, blob: bytes) -> None:
            reason = "not run"
            for _attempt in range(max_attempts):
                runner = await slots.get()
                if runner is None:
                    slots.put_nowait(None)
                    lost[job.key] = f"no runner is left on the cluster (last: {reason})"
                    return
                try:
                    _node, record = await runner.run.remote(blob, config, context)
                except ray.exceptions.RayTaskError as exc:
                    # Raised on the node, not a death (e.g. codeloop missing there): sending it again would not help.
                    slots.put_nowait(runner)
                    lost[job.key] = f"failed on its node: {str(exc).strip().splitlines()[-1][:300]}"
                    return
                except ray.exceptions.RayError as exc:  # the runner's process or node died: send it again
                    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    task = asyncio.ensure_future(give_back_when_alive(runner))
                    reviving.add(task)
                    task.add_done_callback(reviving.discard)
                    continue
                slots.put_nowait(runner)
                if record is None:
                    lost[job.key] = "interrupted on its node"
                    return
                on_record(record)
                return
            lost[job.key] = f"its runner died {max_attempts} times (last: {reason})"

        await asyncio.gather(*(drive(job, blob) for job, blob in zip(jobs, blobs, strict=True)))
        for task in list(reviving):
            task.cancel()
        await asyncio.gather(*(_close_runner(runner) for runner in runners))
        return lost
    finally:
        for runner in runners:
            ray.kill(runner, no_restart=True)  # also stops runs still in flight after Ctrl-C
        if connected_here:
            ray.shutdown()


async def _close_runner(runner: Any) -> None:
    try:
        await asyncio.wait_for(runner.close.remote(), timeout=30)
    except Exception:  # a runner that cannot close its pool is killed next anyway; its sandboxes die with it
        logging.getLogger(__name__).debug("a Ray runner did not close cleanly", exc_info=True)
