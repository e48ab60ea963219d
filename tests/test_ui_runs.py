"""The run browser's JSON API (`codeloop.ui.runs`), through Starlette's TestClient, over a store filled by real
runs against the scripted LLM server: listing and filtering, a run's timeline with its managed agent's run nested,
two runs compared, bad parameters, and the access token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.ui_runs_support import RecordedRuns, record_runs

pytest.importorskip("starlette", reason="the run browser needs Starlette (pip install 'codeloop[ui]')")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from codeloop.ui.runs import create_run_browser_app, run_browser_routes  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedRuns]:
    runs = record_runs(tmp_path_factory.mktemp("ui_runs") / "runs.db")
    yield runs
    runs.store.close()


@pytest.fixture(scope="module")
def client(recorded: RecordedRuns) -> Iterator[TestClient]:
    with TestClient(create_run_browser_app(recorded.store)) as opened:
        yield opened


def get(client: TestClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def ids(page: dict[str, Any]) -> list[str]:
    return [run["run_id"] for run in page["runs"]]


# --- the list ---------------------------------------------------------------------------------------------------


def test_the_list_holds_top_level_runs_newest_first(client: TestClient, recorded: RecordedRuns) -> None:
    page = get(client, "/api/runs")
    assert ids(page) == [recorded.stopped, recorded.tools, recorded.retry, recorded.manager]
    first = page["runs"][-1]
    assert (first["agent"], first["state"], first["model_id"], first["session"]) == (
        "CodeAgent",
        "success",
        "gpt-4o",
        "alice",
    )
    assert first["step_count"] == 2 and first["input_tokens"] > 0 and first["cost_usd"] > 0
    assert first["duration_s"] > 0 and "config" not in first
    with_children = get(client, "/api/runs?children=1")
    assert recorded.researcher in ids(with_children) and len(ids(with_children)) == 5


def test_filters_by_state_session_and_model(client: TestClient, recorded: RecordedRuns) -> None:
    assert ids(get(client, "/api/runs?state=max_steps")) == [recorded.stopped]
    assert ids(get(client, "/api/runs?session=alice")) == [recorded.retry, recorded.manager]
    assert ids(get(client, "/api/runs?model=gpt-4o-mini")) == [recorded.tools, recorded.retry]
    assert ids(get(client, "/api/runs?model=gpt-4o&session=bob")) == [recorded.stopped]
    assert ids(get(client, "/api/runs?state=success&session=bob")) == [recorded.tools]
    assert get(client, "/api/runs?session=nobody")["runs"] == []


def test_filters_by_date_range(client: TestClient, recorded: RecordedRuns) -> None:
    manager = recorded.store.get_run(recorded.manager)
    retry = recorded.store.get_run(recorded.retry)
    # since is inclusive, until exclusive: [manager's start, retry's start) holds the manager's run only
    assert ids(get(client, f"/api/runs?since={manager.started_at!r}&until={retry.started_at!r}")) == [
        recorded.manager
    ]
    tomorrow = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 86400))
    assert get(client, f"/api/runs?since={tomorrow}")["runs"] == []  # an ISO date, UTC
    assert len(ids(get(client, f"/api/runs?until={tomorrow}T00:00:00Z"))) == 4


def test_pages_follow_each_other(client: TestClient, recorded: RecordedRuns) -> None:
    first = get(client, "/api/runs?limit=3")
    assert (first["previous_offset"], first["next_offset"]) == (None, 3)
    second = get(client, "/api/runs?limit=3&offset=3")
    assert (second["previous_offset"], second["next_offset"]) == (0, None)
    assert ids(first) + ids(second) == ids(get(client, "/api/runs"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=yesterday", "since='yesterday' is not a time"),
        ("until=2026-13-01", "until='2026-13-01' is not a time"),
        ("since=2026-11-30&until=2026-11-29", "until must be later than since"),
        ("limit=0", "limit=0 is out of range: use a number between 1 and 500"),
        ("limit=many", "limit='many' is not a whole number"),
        ("offset=-1", "offset=-1 is out of range"),
        ("children=maybe", "children='maybe': use 1 or 0"),
        ("sate=success", "unknown query parameter(s) sate"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(client: TestClient, query: str, message: str) -> None:
    assert message in get(client, f"/api/runs?{query}", status=400)["error"]


# --- one run ----------------------------------------------------------------------------------------------------


def test_a_timeline_nests_the_managed_agents_run_in_the_step_that_called_it(
    client: TestClient, recorded: RecordedRuns
) -> None:
    timeline = get(client, f"/api/runs/{recorded.manager[:24]}")  # a unique prefix will do
    assert timeline["run"]["run_id"] == recorded.manager
    assert [s["kind"] for s in timeline["steps"]] == ["task", "action", "action", "final_answer"]
    step1, step2 = timeline["steps"][1:3]
    assert step1["child_run_ids"] == [recorded.researcher] and step2["child_run_ids"] == []
    assert [e["kind"] for e in step1["effects"]] == ["model", "code", "agent"]
    model, code, agent = step1["effects"]
    assert (
        model["name"] == "gpt-4o" and agent["name"] == "researcher" and agent["run_id"] == recorded.researcher
    )
    assert agent["status"] == "success" and agent["task"] == "capital of France"
    # the child ran inside the code execution, which ran after the model answered, all within the step
    assert model["offset_s"] + model["duration_s"] <= code["offset_s"] <= agent["offset_s"]
    assert agent["offset_s"] + agent["duration_s"] <= code["offset_s"] + code["duration_s"] + 1e-6
    assert code["offset_s"] + code["duration_s"] <= step1["offset_s"] + step1["duration_s"] + 1e-6
    assert "researcher(task='capital of France')" in step1["code"]
    assert "Paris" in step1["observations"]
    [child] = timeline["children"]
    assert child["run"]["agent"] == "researcher" and child["run"]["parent_run_id"] == recorded.manager
    assert [s["kind"] for s in child["steps"]] == ["task", "action", "final_answer"]
    assert [j["kind"] for j in timeline["journal"]].count("model") == 2


def test_tokens_and_cost_per_step_add_up_to_the_run(client: TestClient, recorded: RecordedRuns) -> None:
    for run_id in (recorded.manager, recorded.retry, recorded.tools):
        timeline = get(client, f"/api/runs/{run_id}")
        run, actions = timeline["run"], [s for s in timeline["steps"] if s["kind"] == "action"]
        assert all(s["input_tokens"] > 0 and s["output_tokens"] > 0 for s in actions)
        assert sum(s["input_tokens"] for s in timeline["steps"]) == run["input_tokens"]
        assert sum(s["output_tokens"] for s in timeline["steps"]) == run["output_tokens"]
        costs = [s["cost_usd"] for s in actions]
        assert all(c > 0 for c in costs) and sum(costs) == pytest.approx(run["cost_usd"])


def test_a_tool_calling_run_shows_its_tool_calls_as_effects(
    client: TestClient, recorded: RecordedRuns
) -> None:
    step1 = get(client, f"/api/runs/{recorded.tools}")["steps"][1]
    assert step1["tool_calls"] == [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    tool = next(e for e in step1["effects"] if e["kind"] == "tool")
    assert (tool["name"], tool["status"], tool["output"]) == ("add", "done", "5")
    assert tool["duration_s"] >= 0 and step1["code"] is None


def test_a_failed_step_shows_its_error(client: TestClient, recorded: RecordedRuns) -> None:
    timeline = get(client, f"/api/runs/{recorded.retry}")
    step1 = timeline["steps"][1]
    assert step1["error_type"] == "AgentExecutionError" and "ZeroDivisionError" in step1["error"]
    assert next(e for e in step1["effects"] if e["kind"] == "code")["status"] == "failed"
    assert [e["type"] for e in timeline["events"]][:1] == ["StepError"]


def test_an_unknown_run_is_a_404_naming_it(client: TestClient) -> None:
    assert "run 'feedface' is not in the store" in get(client, "/api/runs/feedface", status=404)["error"]


# --- two runs ---------------------------------------------------------------------------------------------------


def test_two_runs_compared_step_by_step(client: TestClient, recorded: RecordedRuns) -> None:
    result = get(client, f"/api/runs/compare?a={recorded.manager}&b={recorded.retry}")
    a, b, diff = result["a"], result["b"], result["diff"]
    assert (a["run_id"], b["run_id"]) == (recorded.manager, recorded.retry)
    assert diff["state"] is True and diff["model_id"] is False and diff["output"] is False
    assert diff["step_count"] == 1  # the retry took one step more
    assert diff["input_tokens"] == b["input_tokens"] - a["input_tokens"]
    assert diff["cost_usd"] == pytest.approx(b["cost_usd"] - a["cost_usd"])
    assert diff["duration_s"] == pytest.approx(b["duration_s"] - a["duration_s"])
    assert a["answer"].endswith("Paris") and b["answer"] == "Paris"
    rows = result["rows"]
    assert [r["step_number"] for r in rows] == [1, 2, 3]
    assert rows[0]["same"] == {"action": False, "observations": False, "error": False}
    assert "1 / 0" in rows[0]["b"]["action"] and rows[0]["a"]["error"] is None
    assert rows[1]["same"]["action"] is False and rows[1]["b"]["action"].startswith("report = 'Paris'")
    assert rows[2]["a"] is None and rows[2]["b"]["is_final_answer"] is True
    assert rows[2]["same"] == {"action": None, "observations": None, "error": None}


def test_a_run_compared_with_itself_has_no_difference(client: TestClient, recorded: RecordedRuns) -> None:
    result = get(client, f"/api/runs/compare?a={recorded.tools}&b={recorded.tools}")
    assert result["diff"] == {
        "state": True,
        "output": True,
        "model_id": True,
        "step_count": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "cost_usd": 0.0,
        "duration_s": 0.0,
    }
    assert all(set(row["same"].values()) == {True} for row in result["rows"])


def test_compare_needs_two_known_runs(client: TestClient, recorded: RecordedRuns) -> None:
    assert (
        "compare needs two runs" in get(client, f"/api/runs/compare?a={recorded.tools}", status=400)["error"]
    )
    missing = get(client, f"/api/runs/compare?a={recorded.tools}&b=0000", status=404)["error"]
    assert "run '0000' is not in the store" in missing


# --- pages, assets, access --------------------------------------------------------------------------------------


def test_pages_and_their_assets_are_served_from_the_package(
    client: TestClient, recorded: RecordedRuns
) -> None:
    for path in ("/runs", f"/runs/{recorded.manager}", "/runs/compare?a=x&b=y"):
        response = client.get(path)
        assert response.status_code == 200 and '<script src="/runs/assets/runs.js">' in response.text
        assert "http://" not in response.text and "https://" not in response.text  # nothing from a CDN
    assert "function showRun" in client.get("/runs/assets/runs.js").text
    assert client.get("/runs/assets/runs.css").headers["content-type"].startswith("text/css")
    assert client.get("/runs/assets/server.py").status_code == 404
    assert client.get("/", follow_redirects=False).headers["location"] == "/runs"


def test_routes_mounted_under_a_prefix_link_to_it(recorded: RecordedRuns) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    app = Starlette(routes=[Mount("/ui", routes=run_browser_routes(recorded.store))])
    with TestClient(app) as prefixed:
        page = prefixed.get("/ui/runs").text
        assert 'src="/ui/runs/assets/runs.js"' in page and 'data-root="/ui"' in page
        assert ids(prefixed.get("/ui/api/runs?session=bob").json()) == [recorded.stopped, recorded.tools]


def test_routes_refuse_something_that_is_not_a_store() -> None:
    with pytest.raises(TypeError, match="run_browser_routes needs a run store"):
        run_browser_routes("runs.db")  # type: ignore[arg-type]


def test_a_token_is_required_when_given(recorded: RecordedRuns) -> None:
    with TestClient(create_run_browser_app(recorded.store, token="s3cret-Token")) as guarded:
        assert guarded.get("/api/runs").status_code == 401
        assert guarded.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert guarded.get("/api/runs", headers={"Authorization": "Bearer s3cret-Token"}).status_code == 200
        opened = guarded.get("/runs?token=s3cret-Token")  # the link the server prints
        assert opened.status_code == 200 and "codeloop_token=s3cret-Token" in opened.headers["set-cookie"]
        assert guarded.get("/api/runs").status_code == 200  # the cookie now carries it
    with pytest.raises(ValueError, match="token must be a non-empty string"):
        create_run_browser_app(recorded.store, token="has space")


def test_a_store_that_fails_is_a_503_naming_it(tmp_path: Path) -> None:
    from codeloop.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "runs.db")
    with TestClient(create_run_browser_app(store)) as broken:
        store.close()  # every read now fails inside the store
        response = broken.get("/api/runs")
    assert response.status_code == 503 and str(tmp_path / "runs.db") in response.json()["error"]
