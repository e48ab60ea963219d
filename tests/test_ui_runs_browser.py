"""The run browser in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright, against the
app served by uvicorn over a store filled by real runs on the scripted LLM server. It opens the run list, filters
it, opens a run's timeline with its managed agent's run nested, and compares two runs. Screenshots of each page
are saved in the test's temporary folder (pytest prints where on failure)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.ui_runs_support import RecordedRuns, record_runs

CHROMIUM = os.environ.get("CODELOOP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # root in a container; the browser only opens pages of the test's own server
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _browser_problem() -> str | None:
    if not os.path.exists(CHROMIUM):
        return (
            "Chromium is not installed (Debian: apt-get install chromium; `make system-deps` does it as root)"
        )
    for module, package in (("playwright", "playwright"), ("uvicorn", "uvicorn"), ("starlette", "starlette")):
        try:
            __import__(module)
        except ImportError:
            return f"the Python package {package} is not installed (pip install {package})"
    return None


pytestmark = [
    pytest.mark.skipif(_browser_problem() is not None, reason=_browser_problem() or ""),
    # Recording the runs and starting Chromium: minutes, not seconds, on a loaded 2-core machine.
    pytest.mark.timeout(600),
]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordedRuns]:
    runs = record_runs(tmp_path_factory.mktemp("ui_runs_browser") / "runs.db")
    yield runs
    runs.store.close()


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free port of 127.0.0.1, until the block ends: its base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="run-browser", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def base_url(recorded: RecordedRuns) -> Iterator[str]:
    from codeloop.ui.runs import create_run_browser_app

    with serving(create_run_browser_app(recorded.store)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(base_url: str) -> Iterator[Any]:
    # After the runs are recorded: Playwright's sync API runs an event loop in this thread, and with one running
    # the local executor runs agent code on its worker thread, where a managed agent's run is not linked to
    # its manager's (reported; the recording is what is tested elsewhere, here it is only the data).
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(90_000)  # generous: the CI machine's 2 cores are shared and may be loaded
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: message.type == "error" and errors.append(message.text))
    opened.reported_errors = errors  # a test expecting an error takes it out
    yield opened
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


def wait_ready(page: Any, view: str) -> None:
    """Wait until runs.js has rendered `view` (it sets #view's data-ready when a view is drawn)."""
    page.wait_for_selector(f'#view[data-ready="{view}"]', timeout=90_000)


def shot(page: Any, folder: Path, name: str) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    return path


def row_ids(page: Any) -> list[str]:
    return [row.get_attribute("data-run-id") for row in page.query_selector_all("tr.run-row")]


def test_the_run_list_filters_and_pages(
    page: Any, base_url: str, recorded: RecordedRuns, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/runs")
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.stopped, recorded.tools, recorded.retry, recorded.manager]
    first_row = page.locator(f'tr[data-run-id="{recorded.manager}"]')
    assert "gpt-4o" in first_row.inner_text() and "alice" in first_row.inner_text()
    shot(page, tmp_path, "runs-list")

    page.fill('input[name="session"]', "alice")
    page.fill('input[name="model"]', "gpt-4o-mini")
    page.click("#apply")
    page.wait_for_url("**/runs?session=alice&model=gpt-4o-mini")
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.retry]
    page.reload()  # the filters live in the URL: a reload (or a shared link) shows the same
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.retry] and page.input_value('input[name="model"]') == "gpt-4o-mini"

    page.goto(f"{base_url}/runs?state=max_steps")
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.stopped]
    today = time.strftime("%Y-%m-%d")
    page.goto(
        f"{base_url}/runs?from={today}&to={today}&children=1"
    )  # today's runs, in the browser's time zone
    wait_ready(page, "/runs")
    assert len(row_ids(page)) == 5 and recorded.researcher in row_ids(page)
    page.goto(f"{base_url}/runs?to=2000-01-01")
    wait_ready(page, "/runs")
    assert row_ids(page) == [] and page.is_visible("#no-runs")

    page.goto(f"{base_url}/runs?limit=3")
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.stopped, recorded.tools, recorded.retry]
    page.click("#next-page")
    page.wait_for_url("**offset=3")
    wait_ready(page, "/runs")
    assert row_ids(page) == [recorded.manager] and page.is_disabled("#next-page")


def test_a_runs_timeline_shows_steps_effects_the_chart_and_the_nested_run(
    page: Any, base_url: str, recorded: RecordedRuns, tmp_path: Path
) -> None:
    page.goto(f"{base_url}/runs")
    wait_ready(page, "/runs")
    page.click(f'tr[data-run-id="{recorded.manager}"] a')  # from the list to the run
    wait_ready(page, f"/runs/{recorded.manager}")
    steps = page.locator('#view > section.step[data-step="1"]')
    assert "researcher(task='capital of France')" in steps.inner_text()
    kinds = [e.get_attribute("data-kind") for e in steps.locator("> ul.effects > li").element_handles()]
    assert kinds == ["model", "code", "agent"]
    child = page.locator(f'details.child-run[data-run-id="{recorded.researcher}"]')
    assert child.is_visible() and "Managed agent researcher" in child.locator("> summary").inner_text()
    assert "final_answer('Paris')" in child.inner_text()  # the child's own step, nested in its caller's step
    chart = page.locator("#token-chart")
    assert chart.locator("g.chart-step").count() == 2  # one bar group per action step
    assert chart.locator("circle.cost-point").count() == 2
    assert "input tokens" in chart.locator("rect.bar-input title").first.text_content()
    path = shot(page, tmp_path, "run-timeline")
    if os.environ.get("CODELOOP_UPDATE_SCREENSHOT"):  # how docs/ui-runs.png is made
        shutil.copy(path, Path(__file__).resolve().parent.parent / "docs" / "ui-runs.png")

    page.click(f'details.child-run[data-run-id="{recorded.researcher}"] > summary a')  # open the child alone
    wait_ready(page, f"/runs/{recorded.researcher}")
    assert page.locator(".card", has_text="Called by").is_visible()
    page.go_back()
    wait_ready(page, f"/runs/{recorded.manager}")


def test_two_runs_side_by_side(page: Any, base_url: str, recorded: RecordedRuns, tmp_path: Path) -> None:
    page.goto(f"{base_url}/runs?session=alice")
    wait_ready(page, "/runs")
    assert page.is_disabled("#compare-selected")
    page.check(f'tr[data-run-id="{recorded.manager}"] input[type=checkbox]')
    page.check(f'tr[data-run-id="{recorded.retry}"] input[type=checkbox]')
    page.click("#compare-selected")
    wait_ready(page, "/runs/compare")
    summary = page.locator("#compare-summary")
    assert "gpt-4o" in summary.inner_text() and "gpt-4o-mini" in summary.inner_text()
    assert summary.locator('tr[data-field="steps"] .delta').inner_text() == "+1"
    assert summary.locator('tr[data-field="model"] td.differs').count() == 2
    rows = page.locator("#compare-steps tbody tr")
    assert rows.count() == 3
    assert "1 / 0" in rows.nth(0).inner_text() and "(no such step)" in rows.nth(2).inner_text()
    shot(page, tmp_path, "runs-compare")


def test_a_missing_run_shows_the_error(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/runs/feedface")
    wait_ready(page, "error")
    assert "run 'feedface' is not in the store" in page.locator("[role=alert]").inner_text()
    assert [e for e in page.reported_errors if "404" in e]  # Chromium logs the API's 404: expected here
    page.reported_errors.clear()


def test_a_run_in_progress_updates_without_a_reload(browser: Any, tmp_path: Path) -> None:
    # A run recorded by another thread (as by another process: the CLI, a batch) through its own store
    # connection; its second model call is held until the test has seen step 1 in the pages.
    from playwright.sync_api import expect
    from tests.ui_runs_support import code

    from codeloop import CodeAgent
    from codeloop.events import RunStarted, StepFinished
    from codeloop.models.openai import OpenAIModel
    from codeloop.store import open_store
    from codeloop.testing import ScriptedLLMServer, ScriptRequest
    from codeloop.ui.runs import create_run_browser_app

    expect.set_options(timeout=90_000)  # a condition waited on, not a speed: generous for a loaded machine
    release = threading.Event()
    step_one = threading.Event()
    started: list[str] = []

    def script(request: ScriptRequest) -> str:
        if not any(m.role == "assistant" for m in request.messages):
            return code("x = 20")
        assert release.wait(120), "the test never released step 2"
        return code("final_answer(x + 1)")

    def listen(event: Any) -> None:
        if isinstance(event, RunStarted):
            started.append(event.run_id)
        if isinstance(event, StepFinished) and event.step.step_number == 1:
            step_one.set()  # the recorder, the agent's first listener, has written the step by now

    path = tmp_path / "live.db"
    store = open_store(str(path))
    with ScriptedLLMServer(script) as llm, serving(create_run_browser_app(store)) as url:
        model = OpenAIModel("gpt-4o", api_base=llm.base_url, api_key="k", max_retries=1)
        agent = CodeAgent([], model, executor="local", store=str(path), verbosity_level=0, listeners=[listen])
        runner = threading.Thread(target=agent.run, args=("count to twenty-one",), daemon=True)
        runner.start()
        try:
            assert step_one.wait(120), "step 1 was not recorded"
            [run_id] = started
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(90_000)
            listing, timeline = context.new_page(), context.new_page()
            listing.goto(f"{url}/runs")
            wait_ready(listing, "/runs")
            row = listing.locator(f'tr[data-run-id="{run_id}"]')
            expect(row.locator('[data-field="state"]')).to_have_text("running")
            expect(row.locator('[data-field="steps"]')).to_have_text("1")
            timeline.goto(f"{url}/runs/{run_id}")
            wait_ready(timeline, f"/runs/{run_id}")
            expect(timeline.locator('#view > section.step[data-step="1"]')).to_contain_text("x = 20")
            expect(timeline.locator("#live")).to_be_visible()
            assert timeline.locator('#view > section.step[data-step="2"]').count() == 0
            for page in (listing, timeline):
                page.evaluate("window.stillTheSamePage = true")  # gone if the page were reloaded

            release.set()
            expect(timeline.locator('#view > section.step[data-step="2"]')).to_contain_text(
                "final_answer(x + 1)"
            )
            expect(timeline.locator(".card", has_text="State")).to_contain_text("success")
            expect(timeline.locator("#live")).to_have_count(0)
            expect(row.locator('[data-field="state"]')).to_have_text("success")
            expect(row.locator('[data-field="steps"]')).to_have_text("2")
            for page in (listing, timeline):
                assert page.evaluate("window.stillTheSamePage") is True
            shot(timeline, tmp_path, "run-live")
            context.close()
        finally:
            release.set()
            runner.join(timeout=60)
            agent.close()
            store.close()
