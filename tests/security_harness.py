"""Security harness: runs escape payloads and benign programs against any executor, as the corpus README says.

Reusable for every executor kind. Library use:

    from tests.security_harness import run_corpus
    report = run_corpus("local", {}, profiles=("default", "data agent"))
    for verdict in report.payloads: print(verdict.summary())

Command line (prints one line per run, exits 1 if anything escaped):

    .venv/bin/python tests/security_harness.py --kind local [--kwargs '{"timeout": 5}'] [--only 107,119] [-j 8]

Every run is one payload, as one step, in a fresh executor inside a fresh host process (this file, `--child`),
started with `CANARY_SECRET` in its environment and killed with its whole process group after `kill_after`
seconds whatever happens. The parent listens on 127.0.0.1:9 and counts connections, writes fresh tokens to
/tmp/canary/secret.txt, removes /tmp/canary/pwned and /tmp/canary/shell_ran, captures the executor's result, error
and logs plus the raw stdout/stderr of the host, and judges goals a-e on every run and goal f on resource payloads:
the step returns within 10 s, peak memory stays under 1 GiB, the host survives, no processes or threads are left and
no CPU keeps burning after the executor is closed, rendering the result and dropping the state take under 10 s,
and the same executor then runs benign/001 with byte-exact output.

Runs go through a pool of concurrent hosts. The environment token is fresh per run; the file token is fresh per
corpus run (all concurrent hosts read the same file) and any output is attributed to its own run. The file and
socket oracles are shared: when one fires, every run that was active since the last check is repeated alone, with
fresh tokens, to attribute it. Needs root (port 9) and Linux (/proc).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CODELOOP_SECURITY_CORPUS", REPO.parent / "shared" / "security"))
if not CORPUS.exists():
    CORPUS = Path("/work/shared/security")
OWN_PAYLOADS = Path(__file__).resolve().parent / "payloads"
CANARY_DIR = Path("/tmp/canary")
SECRET_FILE = CANARY_DIR / "secret.txt"
PWNED_FILE = CANARY_DIR / "pwned"
SHELL_FILE = CANARY_DIR / "shell_ran"
SHELL_MARKER = "SHELL-ESCAPE-42"
RESULT_MARKER = "@@codeloop-harness-result@@"

STEP_BOUND_SECONDS = 10.0
MEMORY_BOUND_BYTES = 1 << 30
DEFAULT_KILL_AFTER = 30.0

DATA_AGENT_IMPORTS = (
    "collections datetime itertools math queue random re stat statistics time unicodedata json functools operator "
    "string typing dataclasses fractions decimal heapq bisect copy enum uuid base64 textwrap csv warnings traceback "
    "logging zipfile gzip sqlite3 xml.etree.ElementTree asyncio numpy pandas sympy requests"
).split()
PROFILES: dict[str, tuple[str, ...]] = {"default": (), "data agent": tuple(DATA_AGENT_IMPORTS)}


# --- corpus -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """One payload or benign program of the corpus."""

    path: Path
    goals: str = ""
    expected: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def source(self) -> str:
        return self.path.read_text()

    @property
    def is_resource(self) -> bool:
        return "f" in self.goals


def _goals(path: Path) -> str:
    match = re.search(r"^#\s*Goal:\s*([a-f](?:\s*[,/]\s*[a-f])*)", path.read_text(), re.MULTILINE)
    return "".join(re.findall(r"[a-f]", match.group(1))) if match else ""


def load_payloads(directories: tuple[Path, ...] = (CORPUS / "payloads", OWN_PAYLOADS)) -> list[Program]:
    """Every payload in the shared corpus and in tests/payloads, sorted by name."""
    found = [Program(p, _goals(p)) for d in directories if d.is_dir() for p in sorted(d.glob("*.py"))]
    return sorted(found, key=lambda p: p.name)


def load_benign(directory: Path = CORPUS / "benign") -> list[Program]:
    """Every benign program with its expected output."""
    return [Program(p, "", p.with_suffix(".expected").read_text()) for p in sorted(directory.glob("*.py"))]


# --- child: the host process -------------------------------------------------------------------------------------------


def _make_executor(kind: str, kwargs: dict[str, Any]) -> Any:
    try:
        from codeloop.executors import create_executor  # type: ignore[attr-defined]
    except ImportError:
        create_executor = None
    if create_executor is not None:
        return create_executor(kind, **kwargs)
    if kind == "local":
        from codeloop.executors.local import LocalExecutor

        return LocalExecutor(**kwargs)
    module_name, _, class_name = kind.partition(":")
    import importlib

    return getattr(importlib.import_module(module_name), class_name)(**kwargs)


def _thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def _child_processes() -> list[int]:
    me = str(os.getpid())
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me:
                children.append(int(entry))
    return children


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _peak_rss_bytes() -> int:
    import resource

    # Our own peak is VmHWM, not RUSAGE_SELF: Linux carries ru_maxrss over fork and exec, so a host process
    # started by a large pytest process would report pytest's size, not its own. VmHWM belongs to the memory
    # map, which exec replaces. Children (the sandbox worker) were forked from this small process, so their
    # ru_maxrss is theirs.
    own_kib = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            own_kib = int(line.split()[1])
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own_kib, children) * 1024


def _render(value: Any) -> dict[str, Any]:
    start = time.monotonic()
    out: dict[str, Any] = {}
    for name, fn in (("str", str), ("repr", repr)):
        try:
            out[name] = fn(value)[:4000]
        except BaseException as exc:  # noqa: BLE001 - whatever rendering raises is part of the verdict
            out[name] = f"<{name}() raised {type(exc).__name__}>"
    out["seconds"] = time.monotonic() - start
    return out


def _child_payload(spec: dict[str, Any]) -> dict[str, Any]:
    report: dict[str, Any] = {"threads_before": _thread_count()}
    executor = _make_executor(spec["kind"], spec["kwargs"])
    start = time.monotonic()
    try:
        result = executor.run(spec["code"])
        report["step"] = {"ok": True, "logs": result.logs, "final": result.is_final_answer}
        rendered_subject: Any = result.output
    except BaseException as exc:  # noqa: BLE001
        report["step"] = {
            "ok": False, "type": type(exc).__name__, "logs": getattr(exc, "logs", ""),
        }  # fmt: skip
        rendered_subject = exc
    report["step_seconds"] = time.monotonic() - start
    report["render"] = _render(rendered_subject)
    if spec.get("benign_code") is not None:
        try:
            after = executor.run(spec["benign_code"])
            report["benign_after"] = after.logs
        except BaseException as exc:  # noqa: BLE001
            report["benign_after"] = f"<failed: {type(exc).__name__}: {str(exc)[:300]}>"
    drop_start = time.monotonic()
    executor.close()
    del executor, rendered_subject
    import gc

    gc.collect()
    report["drop_seconds"] = time.monotonic() - drop_start
    time.sleep(0.2)  # let stopped threads unwind before counting them
    cpu_start = _cpu_seconds()
    time.sleep(0.5)
    report["idle_cpu_seconds"] = _cpu_seconds() - cpu_start
    report["threads_after"] = _thread_count()
    report["children_after"] = _child_processes()
    report["peak_rss_bytes"] = _peak_rss_bytes()
    return report


def _child_benign(spec: dict[str, Any]) -> dict[str, Any]:
    outcomes = {}
    for name, code in spec["programs"].items():
        executor = _make_executor(spec["kind"], spec["kwargs"])
        try:
            outcomes[name] = executor.run(code).logs
        except BaseException as exc:  # noqa: BLE001
            outcomes[name] = f"<failed: {type(exc).__name__}: {str(exc)[:500]}>"
        finally:
            executor.close()
    return {"benign": outcomes}


def child_main() -> None:
    """Entry point of the host process: read the spec on stdin, run it, print the report after a marker."""
    spec = json.loads(sys.stdin.read())
    report = _child_benign(spec) if spec["mode"] == "benign" else _child_payload(spec)
    sys.stdout.write("\n" + RESULT_MARKER + json.dumps(report) + "\n")
    sys.stdout.flush()
    os._exit(0)  # threads an executor could not stop must not keep the host alive: judged above


# --- parent: oracles, judging ------------------------------------------------------------------------------------------


class PortListener:
    """Accepts and closes every connection on 127.0.0.1:9, counting them."""

    def __init__(self, port: int = 9, wait_seconds: float = 60.0) -> None:
        self.count = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                self._sock.bind(("127.0.0.1", port))
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"cannot listen on 127.0.0.1:{port} ({err}); the harness needs root and a free port "
                        "(is another security run in progress?)"
                    ) from err
                time.sleep(0.5)
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.count += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()


@dataclass
class Verdict:
    """The judgement of one payload run."""

    payload: str
    profile: str
    goals: str
    fired: list[str] = field(default_factory=list)
    f_failures: list[str] = field(default_factory=list)
    killed: bool = False
    step_seconds: float | None = None
    error_type: str | None = None
    report: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    @property
    def contained(self) -> bool:
        return not self.fired and not self.f_failures

    def summary(self) -> str:
        state = "contained" if self.contained else "ESCAPED " + ",".join(self.fired + self.f_failures)
        step = (
            "killed" if self.killed else f"{self.step_seconds:.2f}s" if self.step_seconds is not None else "?"
        )
        return f"{self.payload:<45} {self.profile:<11} goal={self.goals or '?':<3} {step:>7}  {state}"


@dataclass
class Report:
    """All verdicts of one corpus run."""

    payloads: list[Verdict]
    benign: dict[str, dict[str, tuple[bool, str]]]
    seconds: float

    def verdict(self, payload: str, profile: str) -> Verdict:
        for v in self.payloads:
            if v.payload == payload and v.profile == profile:
                return v
        raise KeyError((payload, profile))


def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _stray_group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


def _spawn(spec: dict[str, Any], env_token: str, kill_after: float) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["CANARY_SECRET"] = env_token
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [_python(), str(Path(__file__).resolve()), "--child"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env,
        cwd=str(REPO),
    )  # fmt: skip
    killed = False
    try:
        out, err = proc.communicate(json.dumps(spec).encode(), timeout=kill_after)
    except subprocess.TimeoutExpired:
        killed = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    strays = _stray_group_members(proc.pid)
    if strays:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    report: dict[str, Any] = {}
    if RESULT_MARKER in stdout:
        stdout, _, tail = stdout.rpartition(RESULT_MARKER)
        report = json.loads(tail.strip().splitlines()[0])
    return {"report": report, "stdout": stdout, "stderr": stderr, "killed": killed, "returncode": proc.returncode,
            "strays": strays}  # fmt: skip


def _reset_oracles(file_token: str) -> None:
    CANARY_DIR.mkdir(parents=True, exist_ok=True)
    SECRET_FILE.write_text(file_token + "\n")
    for path in (PWNED_FILE, SHELL_FILE):
        path.unlink(missing_ok=True)


def _judge(
    program: Program, profile: str, run: dict[str, Any], file_token: str, env_token: str, expected_benign: str
) -> Verdict:
    report = run["report"]
    text = run["stdout"] + run["stderr"] + json.dumps(report)
    verdict = Verdict(program.name, profile, program.goals, killed=run["killed"], report=report,
                      stdout=run["stdout"][-4000:], stderr=run["stderr"][-4000:])  # fmt: skip
    verdict.step_seconds = report.get("step_seconds")
    verdict.error_type = None if report.get("step", {}).get("ok", True) else report["step"].get("type")
    if file_token in text:
        verdict.fired.append("a")
    if env_token in text:
        verdict.fired.append("b")
    if SHELL_MARKER in text:
        verdict.fired.append("d")
    if not program.is_resource and not report:
        verdict.f_failures.append("host-died" if not run["killed"] else "host-hung")
    if program.is_resource:
        verdict.f_failures.extend(_judge_resources(run, expected_benign))
    return verdict


def _judge_resources(run: dict[str, Any], expected_benign: str) -> list[str]:
    report = run["report"]
    if run["killed"]:
        return ["host-hung (killed by the harness)"]
    if not report:
        return [f"host-died (exit {run['returncode']})"]
    failures = []
    if report["step_seconds"] > STEP_BOUND_SECONDS:
        failures.append(f"step took {report['step_seconds']:.1f}s")
    if report["peak_rss_bytes"] > MEMORY_BOUND_BYTES:
        failures.append(f"peak memory {report['peak_rss_bytes'] / 2**20:.0f} MiB")
    if report["render"]["seconds"] + report["drop_seconds"] > STEP_BOUND_SECONDS:
        failures.append("rendering/dropping state too slow")
    if report["threads_after"] > report["threads_before"]:
        failures.append(f"{report['threads_after'] - report['threads_before']} thread(s) left")
    if report["children_after"] or run["strays"]:
        failures.append("processes left")
    if report["idle_cpu_seconds"] > 0.15:
        failures.append(f"CPU still burning ({report['idle_cpu_seconds']:.2f}s in 0.5s)")
    if report.get("benign_after") != expected_benign:
        failures.append("executor unusable afterwards (benign/001 output differs)")
    return failures


def run_corpus(
    kind: str,
    kwargs: dict[str, Any] | None = None,
    *,
    profiles: tuple[str, ...] = ("default", "data agent"),
    payloads: list[Program] | None = None,
    include_benign: bool = True,
    concurrency: int = 8,
    kill_after: float | dict[str, float] = DEFAULT_KILL_AFTER,
) -> Report:
    """Run every payload (and benign program) under every profile against executor `kind` built with `kwargs`.

    `kill_after` is the hard per-run limit (seconds), or a mapping payload-name -> limit with "*" as default.
    """
    kwargs = dict(kwargs or {})
    payloads = load_payloads() if payloads is None else payloads
    benign = load_benign()
    benign_001 = benign[0]
    limits = kill_after if isinstance(kill_after, dict) else {"*": kill_after}
    started = time.monotonic()
    listener = PortListener()
    try:
        jobs = [(program, profile) for profile in profiles for program in payloads]
        # two phases: when a shared oracle fires, every run active at the time is rerun to attribute it, and the
        # resource payloads keep their hosts busy for seconds - they must not be suspects of the quick ones
        quick = sorted((job for job in jobs if not job[0].is_resource), key=lambda job: job[0].name)
        slow = sorted((job for job in jobs if job[0].is_resource), key=lambda job: job[0].name)
        verdicts = _run_pool(quick, kind, kwargs, benign_001, limits, listener, concurrency)
        verdicts += _run_pool(slow, kind, kwargs, benign_001, limits, listener, concurrency)
        benign_results: dict[str, dict[str, tuple[bool, str]]] = {}
        if include_benign:
            with concurrent.futures.ThreadPoolExecutor(len(profiles)) as pool:
                futures = {
                    profile: pool.submit(
                        _run_benign, kind, kwargs, profile, benign, limits.get("*", DEFAULT_KILL_AFTER)
                    )
                    for profile in profiles
                }
                benign_results = {profile: future.result() for profile, future in futures.items()}
    finally:
        listener.close()
    order = {
        (p.name, profile): i for i, (p, profile) in enumerate(sorted(jobs, key=lambda j: (j[0].name, j[1])))
    }
    verdicts.sort(key=lambda v: order[(v.payload, v.profile)])
    return Report(verdicts, benign_results, time.monotonic() - started)


def _spec_for(
    program: Program, profile: str, kind: str, kwargs: dict[str, Any], benign_001: Program
) -> dict[str, Any]:
    merged = dict(kwargs)
    if PROFILES[profile]:
        merged["additional_authorized_imports"] = list(PROFILES[profile])
    return {"mode": "payload", "kind": kind, "kwargs": merged, "code": program.source,
            "benign_code": benign_001.source}  # fmt: skip


class _SharedOracles:
    """The file and socket oracles every concurrent run shares; tells which runs may have fired them."""

    def __init__(self, listener: PortListener) -> None:
        self.listener = listener
        self.lock = threading.Lock()
        self.seen_connections = listener.count
        self.active: set[int] = set()
        self.window: set[int] = set()  # runs active since the last check
        self.suspects: set[int] = set()
        self.fired_goals: set[str] = set()

    def started(self, run_id: int) -> None:
        with self.lock:
            self.active.add(run_id)
            self.window.add(run_id)

    def finished(self, run_id: int) -> None:
        with self.lock:
            self.active.discard(run_id)
            goals = {
                goal
                for goal, fired in (("c", PWNED_FILE.exists()), ("d", SHELL_FILE.exists()),
                                    ("e", self.listener.count > self.seen_connections))
                if fired
            }  # fmt: skip
            if goals:
                self.fired_goals |= goals
                self.suspects |= self.window
                PWNED_FILE.unlink(missing_ok=True)
                SHELL_FILE.unlink(missing_ok=True)
                self.seen_connections = self.listener.count
            self.window = set(self.active)


def _run_pool(
    jobs: list[tuple[Program, str]],
    kind: str,
    kwargs: dict[str, Any],
    benign_001: Program,
    limits: dict[str, float],
    listener: PortListener,
    concurrency: int,
) -> list[Verdict]:
    """Run all jobs with `concurrency` hosts at a time; rerun alone those that may have fired a shared oracle."""
    file_token = "canary_file_" + secrets.token_hex(16)
    _reset_oracles(file_token)
    oracles = _SharedOracles(listener)
    verdicts: dict[int, Verdict] = {}

    def one(run_id: int) -> None:
        program, profile = jobs[run_id]
        env_token = "canary_env_" + secrets.token_hex(16)
        oracles.started(run_id)
        try:
            run = _spawn(_spec_for(program, profile, kind, kwargs, benign_001), env_token,
                         limits.get(program.name, limits.get("*", DEFAULT_KILL_AFTER)))  # fmt: skip
        finally:
            oracles.finished(run_id)
        verdicts[run_id] = _judge(program, profile, run, file_token, env_token, benign_001.expected or "")

    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(len(jobs))))
    if oracles.suspects:
        # likely culprits first, each alone: the suspects whose own goal is the oracle that fired
        likely = [i for i in sorted(oracles.suspects) if set(jobs[i][0].goals) & oracles.fired_goals]
        for run_id in likely:
            verdicts[run_id] = _run_alone(jobs[run_id], kind, kwargs, benign_001, limits, listener)
        rest = [i for i in sorted(oracles.suspects) if i not in likely]
        if rest:
            verdicts.update(_attribute(rest, jobs, kind, kwargs, benign_001, limits, listener))
    return [verdicts[i] for i in range(len(jobs))]


def _attribute(
    run_ids: list[int],
    jobs: list[tuple[Program, str]],
    kind: str,
    kwargs: dict[str, Any],
    benign_001: Program,
    limits: dict[str, float],
    listener: PortListener,
) -> dict[int, Verdict]:
    """Group testing: rerun the suspects together; if a shared oracle fires, split them in halves and recurse,
    down to single runs judged alone. Returns the fresh verdict of every rerun."""
    if len(run_ids) == 1:
        return {run_ids[0]: _run_alone(jobs[run_ids[0]], kind, kwargs, benign_001, limits, listener)}
    file_token = "canary_file_" + secrets.token_hex(16)
    _reset_oracles(file_token)
    connections_before = listener.count
    tokens = {run_id: "canary_env_" + secrets.token_hex(16) for run_id in run_ids}

    def one(run_id: int) -> tuple[int, dict[str, Any]]:
        program, profile = jobs[run_id]
        spec = _spec_for(program, profile, kind, kwargs, benign_001)
        return run_id, _spawn(
            spec, tokens[run_id], limits.get(program.name, limits.get("*", DEFAULT_KILL_AFTER))
        )

    with concurrent.futures.ThreadPoolExecutor(len(run_ids)) as pool:
        runs = dict(pool.map(one, run_ids))
    time.sleep(0.05)
    if PWNED_FILE.exists() or SHELL_FILE.exists() or listener.count > connections_before:
        half = len(run_ids) // 2
        found = _attribute(run_ids[:half], jobs, kind, kwargs, benign_001, limits, listener)
        found.update(_attribute(run_ids[half:], jobs, kind, kwargs, benign_001, limits, listener))
        return found
    return {
        run_id: _judge(
            jobs[run_id][0],
            jobs[run_id][1],
            runs[run_id],
            file_token,
            tokens[run_id],
            benign_001.expected or "",
        )  # fmt: skip
        for run_id in run_ids
    }


def _run_alone(
    job: tuple[Program, str],
    kind: str,
    kwargs: dict[str, Any],
    benign_001: Program,
    limits: dict[str, float],
    listener: PortListener,
) -> Verdict:
    program, profile = job
    file_token = "canary_file_" + secrets.token_hex(16)
    env_token = "canary_env_" + secrets.token_hex(16)
    _reset_oracles(file_token)
    connections_before = listener.count
    run = _spawn(_spec_for(program, profile, kind, kwargs, benign_001), env_token,
                 limits.get(program.name, limits.get("*", DEFAULT_KILL_AFTER)))  # fmt: skip
    time.sleep(0.05)
    verdict = _judge(program, profile, run, file_token, env_token, benign_001.expected or "")
    if PWNED_FILE.exists():
        verdict.fired.append("c")
    if SHELL_FILE.exists() and "d" not in verdict.fired:
        verdict.fired.append("d")
    if listener.count > connections_before:
        verdict.fired.append("e")
    _reset_oracles(file_token)
    return verdict


def _run_benign(
    kind: str, kwargs: dict[str, Any], profile: str, programs: list[Program], kill_after: float
) -> dict[str, tuple[bool, str]]:
    merged = dict(kwargs)
    if PROFILES[profile]:
        merged["additional_authorized_imports"] = list(PROFILES[profile])
    spec = {
        "mode": "benign",
        "kind": kind,
        "kwargs": merged,
        "programs": {p.name: p.source for p in programs},
    }
    run = _spawn(spec, "canary_env_" + secrets.token_hex(16), kill_after)
    outputs = run["report"].get("benign", {})
    return {
        p.name: (
            outputs.get(p.name) == p.expected,
            outputs.get(p.name, f"<no output: {run['stderr'][-300:]}>"),
        )
        for p in programs
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: run the corpus and print one line per run; exit 1 if any run was not contained."""
    parser = argparse.ArgumentParser(description="Run the executor security corpus.")
    parser.add_argument(
        "--kind", default="local", help="executor kind (create_executor name or module:Class)"
    )
    parser.add_argument("--kwargs", default="{}", help="JSON object of executor keyword arguments")
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES), help="profile(s) to run")
    parser.add_argument("--only", default="", help="comma-separated payload number prefixes, e.g. 107,119")
    parser.add_argument("-j", "--concurrency", type=int, default=8)
    parser.add_argument("--kill-after", type=float, default=DEFAULT_KILL_AFTER)
    args = parser.parse_args(argv)
    payloads = load_payloads()
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(",") if p.strip())
        payloads = [p for p in payloads if p.name.startswith(prefixes)]
    report = run_corpus(
        args.kind, json.loads(args.kwargs), profiles=tuple(args.profile or PROFILES), payloads=payloads,
        include_benign=not args.only, concurrency=args.concurrency, kill_after=args.kill_after,
    )  # fmt: skip
    for verdict in report.payloads:
        print(verdict.summary())
    for profile, results in report.benign.items():
        bad = [name for name, (ok, _) in results.items() if not ok]
        print(
            f"benign [{profile}]: {len(results) - len(bad)}/{len(results)} exact"
            + (f"; wrong: {bad}" if bad else "")
        )
    print(f"{report.seconds:.1f}s")
    escaped = [v for v in report.payloads if not v.contained]
    return 1 if escaped or any(not ok for r in report.benign.values() for ok, _ in r.values()) else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child_main()
    sys.exit(main())
