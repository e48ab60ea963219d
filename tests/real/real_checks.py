"""What must hold for any run on any model, checked on real runs."""

from __future__ import annotations

from codeloop.memory import ActionStep, FinalAnswerStep, PlanningStep, RunResult
from codeloop.models.base import TokenUsage
from codeloop.testing.local_server import ServerExchange

# The errors a step may end with: each is the model's to fix, and goes back to it as an observation.
MODEL_FACING_ERRORS = {
    "AgentParsingError",
    "AgentExecutionError",
    "AgentToolCallError",
    "AgentToolExecutionError",
}


def assert_sound_run(result: RunResult, max_steps: int, exchanges: list[ServerExchange]) -> None:
    """The run ended by itself within `max_steps`, every step ran or told the model why not, usage is exact."""
    assert result.state in ("success", "max_steps"), f"the run ended with {result.state}: {result.error}"
    actions = [s for s in result.steps if isinstance(s, ActionStep)]
    assert 1 <= len(actions) <= max_steps
    for step in actions:
        if step.error is None:
            assert step.observations is not None, f"step {step.step_number} neither ran nor failed"
            continue
        assert step.error_type in MODEL_FACING_ERRORS, (
            f"step {step.step_number} ended on an internal error {step.error_type}: {step.error}"
        )
        assert step.error.strip(), f"step {step.step_number} failed with an empty error message"
    assert_usage_matches_server(result, exchanges)


def assert_error_reached_model(agent_messages: list[str], error: str) -> None:
    """A failing step's error text is in what the model saw next."""
    first_line = error.strip().splitlines()[0]
    assert any(first_line in text for text in agent_messages), f"the model never saw the error {first_line!r}"


def assert_usage_matches_server(result: RunResult, exchanges: list[ServerExchange]) -> None:
    """Each model call's recorded usage equals what the server reported for it, and the run's total sums them."""
    recorded = [
        s.token_usage
        for s in result.steps
        if isinstance(s, ActionStep | PlanningStep | FinalAnswerStep) and s.token_usage is not None
    ]
    server = [
        TokenUsage(input_tokens=e.usage["prompt_tokens"], output_tokens=e.usage["completion_tokens"])
        for e in exchanges
    ]
    assert len(server) >= 1
    assert [(u.input_tokens, u.output_tokens) for u in recorded] == [
        (u.input_tokens, u.output_tokens) for u in server
    ]
    assert result.token_usage.input_tokens == sum(u.input_tokens for u in server)
    assert result.token_usage.output_tokens == sum(u.output_tokens for u in server)
