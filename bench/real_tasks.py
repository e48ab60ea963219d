"""The tool-use task suite (`codeloop.evals.tool_tasks()`) on the real local model, per agent.

    make real-model   # once: fetch the model, build the runtime
    .venv/bin/python bench/real_tasks.py [--agents code,tool_calling] [--suite first22|builtin] [--tasks a,b]
        [--limit N] [--out runs.jsonl]
        [--traces DIR]

Starts the prepared Qwen2.5-Coder-1.5B (Q4_K_M) on llama-cpp-python's server (or uses `--api-base`), then runs
every selected task with every selected agent at temperature 0 and max_steps 6 (`--max-steps`), one run at a time (the server
answers one request at a time). Each run is a child process killed at `--wall-limit` seconds, so one stuck run
cannot stall the suite; its tokens up to the kill are still counted (every step reports as it ends).

Agents: `code` (codeloop CodeAgent, default sandbox executor), `code_remind` (with `remind_unused_tools=True`), `code_nocompact` (with `compaction=None`), `code_local` (CodeAgent on LocalExecutor), `code_look` (CodeAgent with `look_before_answer=True`),
`tool_calling` (codeloop ToolCallingAgent), `tool_calling_calc` (the same with `calculator=True`) and, when `smolagents` is importable, `smol_code` and
`smol_tool_calling` (its CodeAgent and ToolCallingAgent through `OpenAIServerModel` on the same server).
Default: codeloop's two default agents, plus smolagents' two when it is installed.

Prints per agent: solved/total, mean action steps, input and output tokens as the agent reported them (for a
killed run, those of the steps it finished), wall time of the runs (child start to end, so sandbox start-up
counts) and how many were killed. Tasks run in task-major order (every agent on task 1, then on
task 2, ...), so a suite stopped early still compares the agents on the same tasks.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from codeloop.evals import ToolTask, first_tool_tasks, tool_tasks  # noqa: E402

CODELOOP_AGENTS = (
    "code", "code_remind", "code_nocompact", "code_local", "code_look", "tool_calling", "tool_calling_calc"
)  # fmt: skip
SMOLAGENTS_AGENTS = ("smol_code", "smol_tool_calling")
MAX_TOKENS = 512
MAX_STEPS = int(os.environ.get("CODELOOP_BENCH_MAX_STEPS", "6"))
"""Per run (`--max-steps`, passed to the child processes through the environment)."""
"""Per model reply: bounds how long the server keeps generating for a run that was killed."""
_STEP, _RESULT = "@@step ", "@@result "


# --- one run, in a child process ---------------------------------------------------------------------------------


def _emit(prefix: str, data: dict[str, Any]) -> None:
    sys.__stdout__.write(prefix + json.dumps(data) + "\n")  # type: ignore[union-attr]
    sys.__stdout__.flush()  # type: ignore[union-attr]


def _usage_of(step: Any) -> tuple[int, int]:
    usage = getattr(step, "token_usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "input_tokens", 0) or 0), int(getattr(usage, "output_tokens", 0) or 0)


_trace: Path | None = None
"""With `--traces DIR`, the file this run's steps are appended to as they end (a killed run keeps its trace)."""


def _append_trace(record: dict[str, Any]) -> None:
    if _trace is not None:
        with _trace.open("a") as f:
            f.write(json.dumps(record, default=repr) + "\n")


def _step_record(step: Any) -> dict[str, Any]:
    for method in ("to_dict", "dict"):  # codeloop's steps, then smolagents'
        as_dict = getattr(step, method, None)
        if callable(as_dict):
            try:
                return {"step": type(step).__name__, **as_dict()}
            except Exception:  # a step that cannot describe itself is still traced, by its repr
                break
    return {"step": type(step).__name__, "repr": repr(step)}


def _step_callback(step: Any, agent: Any = None) -> None:
    inp, out = _usage_of(step)
    action = type(step).__name__ == "ActionStep"
    _emit(_STEP, {"action": action, "input_tokens": inp, "output_tokens": out})
    _append_trace(_step_record(step))


def _codeloop_agent(kind: str, task: ToolTask, api_base: str, wall_limit: float) -> Any:
    from codeloop import CodeAgent, OpenAIModel, ToolCallingAgent

    model = OpenAIModel(
        "local", api_base=api_base, api_key="not-needed", temperature=0, seed=0, max_tokens=MAX_TOKENS,
        timeout=wall_limit, max_retries=0,
    )  # fmt: skip
    common: dict[str, Any] = {
        "max_steps": MAX_STEPS,
        "verbosity_level": 0,
        "step_callbacks": [_step_callback],
    }
    if kind == "code_nocompact":  # the context-policy comparison: every step sent in full
        common["compaction"] = None
    if kind in ("tool_calling", "tool_calling_calc"):
        calculator = kind == "tool_calling_calc"
        return ToolCallingAgent(list(task.tools), model=model, calculator=calculator, **common)
    executor = "local" if kind == "code_local" else "sandbox"
    look = kind == "code_look"
    common["remind_unused_tools"] = kind == "code_remind"
    return CodeAgent(list(task.tools), model=model, executor=executor, look_before_answer=look, **common)


def _smolagents_agent(kind: str, task: ToolTask, api_base: str, wall_limit: float) -> Any:
    import smolagents

    # smolagents builds its tool schema from the plain function's hints and docstring, as codeloop does.
    tools = [smolagents.tool(t._function) for t in task.tools]
    model = smolagents.OpenAIServerModel(
        model_id="local", api_base=api_base, api_key="not-needed", temperature=0, seed=0, max_tokens=MAX_TOKENS, flatten_messages_as_text=True,
        client_kwargs={"timeout": wall_limit, "max_retries": 0},
    )  # fmt: skip
    agent_class = smolagents.CodeAgent if kind == "smol_code" else smolagents.ToolCallingAgent
    return agent_class(
        tools=tools, model=model, max_steps=MAX_STEPS, verbosity_level=-1, step_callbacks=[_step_callback]
    )


def run_worker(kind: str, task: ToolTask, api_base: str, wall_limit: float) -> None:
    """Run one task with one agent and emit its outcome (called in the child process)."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {"error": None, "state": None, "answer": None, "solved": False}
    try:
        if kind in SMOLAGENTS_AGENTS:
            agent = _smolagents_agent(kind, task, api_base, wall_limit)
            answer = agent.run(task.question)
            outcome["state"] = "success" if answer is not None else "no answer"
            counts = agent.monitor.get_total_token_counts()
            outcome["input_tokens"] = int(getattr(counts, "input_tokens", 0) or 0)
            outcome["output_tokens"] = int(getattr(counts, "output_tokens", 0) or 0)
        else:
            agent = _codeloop_agent(kind, task, api_base, wall_limit)
            with agent:
                result = agent.run(task.question, return_full_result=True)
            answer = result.output
            outcome["state"] = result.state
            outcome["error"] = result.error
            # The run's own total also holds the forced final answer's call, which no step callback sees.
            outcome["input_tokens"] = result.token_usage.input_tokens
            outcome["output_tokens"] = result.token_usage.output_tokens
        outcome["answer"] = repr(answer)[:300]
        outcome["solved"] = task.is_solved_by(answer)
    except Exception as exc:  # a framework failure is a result of the benchmark, not a crash of it
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:500]
    outcome["seconds"] = time.perf_counter() - started
    _append_trace({"outcome": outcome, "expected": repr(task.expected)})
    _emit(_RESULT, outcome)


# --- the suite, in the parent ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One agent on one task, as the parent saw it."""

    agent: str
    task: str
    solved: bool = False
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    killed: bool = False
    state: str | None = None
    answer: str | None = None
    error: str | None = None


@dataclass
class Totals:
    """Sums over one agent's runs."""

    runs: list[Run] = field(default_factory=list)

    def line(self, agent: str) -> str:
        """One row of the summary table."""
        n = len(self.runs)
        solved = sum(r.solved for r in self.runs)
        steps = sum(r.steps for r in self.runs) / n if n else 0.0
        inp = sum(r.input_tokens for r in self.runs)
        out = sum(r.output_tokens for r in self.runs)
        wall = sum(r.seconds for r in self.runs)
        killed = sum(r.killed for r in self.runs)
        return f"| {agent} | {solved}/{n} | {steps:.1f} | {inp:,} | {out:,} | {wall:.0f} | {killed} |"


def run_in_child(
    agent: str, task: ToolTask, api_base: str, wall_limit: float, traces: Path | None = None
) -> Run:
    """Run one task with one agent in a child process, killed after `wall_limit` seconds."""
    command = [sys.executable, __file__, "--worker", agent, "--tasks", task.name, "--api-base", api_base,
               "--wall-limit", str(wall_limit)]  # fmt: skip
    if traces is not None:
        traces.mkdir(parents=True, exist_ok=True)
        trace = traces / f"{agent}-{task.name}.jsonl"
        trace.unlink(missing_ok=True)
        command += ["--trace-file", str(trace)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = Run(agent, task.name)
    try:
        stdout, stderr = process.communicate(timeout=wall_limit)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        run.killed = True
    finally:
        if process.poll() is None:  # the suite itself was stopped: leave no run behind
            process.kill()
    run.seconds = time.perf_counter() - started
    for line in stdout.splitlines():
        if line.startswith(_STEP):
            step = json.loads(line[len(_STEP) :])
            run.steps += bool(step["action"])
            run.input_tokens += step["input_tokens"]
            run.output_tokens += step["output_tokens"]
        elif line.startswith(_RESULT):
            result = json.loads(line[len(_RESULT) :])
            run.solved, run.state, run.answer = result["solved"], result["state"], result["answer"]
            run.error = result["error"]
            if "input_tokens" in result:
                run.input_tokens, run.output_tokens = result["input_tokens"], result["output_tokens"]
    if run.killed:
        run.state, run.solved = "killed", False
    elif run.state is None and run.error is None:
        run.error = f"the run ended without a result (exit {process.returncode}): {stderr.strip()[-500:]}"
    return run


def _agents(spec: str | None) -> list[str]:
    has_smolagents = importlib.util.find_spec("smolagents") is not None
    if spec is None:
        return ["code", "tool_calling", *(SMOLAGENTS_AGENTS if has_smolagents else ())]
    agents = [a.strip() for a in spec.split(",") if a.strip()]
    known = CODELOOP_AGENTS + SMOLAGENTS_AGENTS
    unknown = [a for a in agents if a not in known]
    if unknown:
        raise SystemExit(f"unknown agent(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    if not has_smolagents and any(a in SMOLAGENTS_AGENTS for a in agents):
        raise SystemExit("smolagents is not installed: pip install smolagents (or leave out smol_* agents)")
    return agents


def main() -> None:
    """Parse the command line; run the suite (or, with `--worker`, one run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--agents", help=f"comma-separated, from {', '.join(CODELOOP_AGENTS + SMOLAGENTS_AGENTS)}"
    )
    parser.add_argument("--tasks", help="comma-separated task names (default: the --suite's tasks)")
    parser.add_argument(
        "--suite", choices=["first22", "builtin"], default="first22",
        help="first22: the 22 tasks earlier figures were measured on (default); builtin: all of tool_tasks()",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="only the first N selected tasks")
    parser.add_argument("--max-steps", type=int, help="steps per run (default 6); compaction starts after 6")
    parser.add_argument(
        "--wall-limit", type=float, default=240.0, help="seconds before a run is killed (240)"
    )
    parser.add_argument(
        "--api-base", help="use this OpenAI-compatible server instead of starting the local model"
    )
    parser.add_argument("--out", type=Path, help="append every run as a JSON line to this file")
    parser.add_argument("--traces", type=Path, help="write every run's steps to DIR/<agent>-<task>.jsonl")
    parser.add_argument("--summarize", type=Path, help="only print the table of runs recorded with --out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--trace-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.max_steps:
        os.environ["CODELOOP_BENCH_MAX_STEPS"] = str(args.max_steps)  # read by the child processes
    if args.summarize:
        summarize(args.summarize)
        return
    try:
        if args.tasks or args.suite == "builtin":
            tasks = tool_tasks(args.tasks.split(",") if args.tasks else None)
        else:
            tasks = first_tool_tasks()
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if args.worker:
        global _trace
        _trace = args.trace_file
        run_worker(args.worker, tasks[0], args.api_base, args.wall_limit)
        return
    tasks = tasks[: args.limit] if args.limit else tasks
    agents = _agents(args.agents)

    # A background job ignores SIGINT; SIGTERM then has to unwind through `finally` so the server stops too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = None
    api_base = args.api_base
    if api_base is None:
        from codeloop.testing.local_server import LocalModelServer

        server = LocalModelServer().start()
        api_base = server.api_base
    print(f"{len(tasks)} tasks x {len(agents)} agents on {api_base}; load average {os.getloadavg()[0]:.1f}")
    totals = {agent: Totals() for agent in agents}
    suite_started = time.perf_counter()
    try:
        for task in tasks:
            for agent in agents:
                run = run_in_child(agent, task, api_base, args.wall_limit, args.traces)
                totals[agent].runs.append(run)
                mark = "ok " if run.solved else "-- "
                print(f"{mark}{agent:18} {task.name:24} steps={run.steps} in={run.input_tokens:>6} "
                      f"out={run.output_tokens:>5} {run.seconds:6.1f}s {run.state} {run.answer} "
                      f"{run.error or ''}".rstrip(), flush=True)  # fmt: skip
                if args.out:
                    with args.out.open("a") as f:
                        f.write(json.dumps(run.__dict__) + "\n")
    finally:
        if server is not None:
            server.stop()
    print(
        f"\nsuite wall time {time.perf_counter() - suite_started:.0f} s; load average {os.getloadavg()[0]:.1f}"
    )
    print_table(totals)


def print_table(totals: dict[str, Totals]) -> None:
    """The summary table, one row per agent, in Markdown."""
    print("| agent | solved | mean steps | input tokens | output tokens | wall s | killed |")
    print("|---|---|---|---|---|---|---|")
    for agent, agent_totals in totals.items():
        print(agent_totals.line(agent))


def summarize(path: Path) -> None:
    """Print the table of the runs recorded with `--out` (e.g. of a suite still running, or stopped early)."""
    totals: dict[str, Totals] = {}
    for line in path.read_text().splitlines():
        run = Run(**json.loads(line))
        totals.setdefault(run.agent, Totals()).runs.append(run)
    tasks = {run.task for agent_totals in totals.values() for run in agent_totals.runs}
    print(f"{len(tasks)} tasks recorded in {path}")
    print_table(totals)


if __name__ == "__main__":
    main()
