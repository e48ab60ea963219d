"""Continuing a run from its journal: what `MultiStepAgent.resume` does before the loop replays it.

The journal and its replay live in `durable.py`; this is the entry point that checks the decisions given against
the calls the run is paused on, rebuilds the agent's state, and starts the loop in resume mode.
"""

from __future__ import annotations

from typing import Any

from .durable import pending_approvals

__all__ = ["start_resume"]


def start_resume(agent: Any, run_id: str, approvals: dict[str, Any] | None) -> Any:
    """The loop of `agent` continuing run `run_id` from its journal (see `MultiStepAgent.resume`)."""
    if not isinstance(run_id, str) or not run_id:
        raise TypeError(f"resume needs a run id (a string from RunResult.run_id), got {run_id!r}")
    durable = agent._durable
    run = durable.prepare_resume(run_id)
    try:
        if approvals:
            pending = {str(p["call_id"]): p for p in pending_approvals(durable._pending.journal)}
            unknown = sorted(set(approvals) - set(pending))
            if unknown:
                listing = "; ".join(f"{c}: {p.get('tool')}({p.get('arguments')})" for c, p in pending.items())
                raise ValueError(
                    f"unknown call id {', '.join(unknown)} for run {run_id}; "
                    + (
                        f"the pending calls are: {listing}"
                        if pending
                        else "it has no calls awaiting approval"
                    )
                )
        # Re-executed code must rebuild its variables from nothing: an executor the agent made is replaced.
        agent._close_owned()
        agent.state = dict(run["variables"])
        # Every decision the run was ever given: the approval gate applies them by call id as the replay goes.
        agent._pending_approvals = durable.record_decisions(dict(approvals or {}))
        agent._pending_rounds = durable.decision_rounds()
        images, session = run.get("images") or None, run.get("session")
        return agent._start(run["task"], True, images, None, run["max_steps"], session, resuming=run_id)
    except BaseException:
        agent._durable.cancel_resume()
        raise
