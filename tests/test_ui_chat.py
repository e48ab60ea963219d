"""The web UI's chat and approvals, in a real browser: headless Chromium (Debian's `chromium`) driven by
Playwright, against a real uvicorn server whose agents talk to the scripted OpenAI-wire server and run their
code in the sandbox. One server and one browser for the module; every test opens its own browser context (its
own cookies: a separate chat session). Screenshots go to tests/artifacts/ui/ (ignored by git)."""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# A safety net, not a speed test: the module shares one server and browser, whose start counts toward the
# first test, and runs take longer on a loaded machine.
pytestmark = pytest.mark.timeout(600)
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's chromium package (make system-deps) for the browser tests", allow_module_level=True
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright package (dev dependencies)"
)
pytest.importorskip("uvicorn", reason="needs the ui extra (uvicorn, starlette, sse-starlette)")

from codeloop import CodeAgent, tool  # noqa: E402
from codeloop.approval import ALLOW, ASK  # noqa: E402
from codeloop.models.openai import OpenAIModel  # noqa: E402
from codeloop.testing.scripted import ScriptRequest  # noqa: E402
from codeloop.testing.server import ScriptedLLMServer  # noqa: E402
from codeloop.tools.toolbox import UserInputTool  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts" / "ui"
WAIT_MS = 60_000  # generous: chromium, a sandbox pool and the runs share a busy machine
sync_api.expect.set_options(timeout=WAIT_MS)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def _code(body: str, thought: str = "") -> str:
    return f"{thought}\n```python\n{body}\n```".strip()


# A 40x20 red PNG made with the standard library only (the sandbox may have no PIL), as code that returns it.
PNG_CODE = """import struct, zlib
def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
rows = b''.join(b'\\x00' + b'\\xff\\x00\\x00' * 40 for _ in range(20))
png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 40, 20, 8, 2, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b'')
final_answer(png)"""

# Step 2 of the "chart" task: a CSV in a subfolder, a PNG, a file over the app's 1 MiB limit, and a link out of
# the working directory (which must not be offered).
CHART_FILES_CODE = (
    PNG_CODE.replace("final_answer(png)", "open('plot.png', 'wb').write(png)")
    + "\nimport os\nos.makedirs('out', exist_ok=True)\nopen('out/table.csv', 'w').write('a,b\\n1,2\\n')"
    + "\nopen('big.bin', 'wb').write(b'0' * 1_500_000)\nos.symlink('/usr', 'escape')"
)


class Script:
    """The model's replies, chosen by the task's keyword, so sessions running at once get their own."""

    def __init__(self) -> None:
        self.both_started = threading.Barrier(2, timeout=120)
        self.release_slow = threading.Event()
        self.release_stop = threading.Event()

    def __call__(self, request: ScriptRequest) -> str:
        # a session's conversation goes on: the current task is the last one, its steps the replies after it
        start = max(
            i for i, m in enumerate(request.messages) if m.role == "user" and "New task" in (m.text or "")
        )
        task = request.messages[start].text or ""
        steps = sum(m.role == "assistant" for m in request.messages[start:])
        if "HELPERTASK" in task:
            return _code("final_answer('the helper counted 3')")
        if "square" in task:
            if steps == 0:
                return _code("x = 6 * 7\nprint('x is', x)", "Thought: I multiply first.")
            return _code("final_answer(x)", "Thought: x is the answer.")
        if "email" in task:
            return _code("receipt = send_email(to='bob@example.com', body='hello')\nfinal_answer(receipt)")
        if "name" in task:
            return _code("name = user_input('What is your name?')\nfinal_answer('Hello ' + name)")
        if "delegate" in task:
            return _code("report = helper(task='HELPERTASK count the letters')\nfinal_answer(report)")
        if "draw" in task:
            return _code(PNG_CODE)
        if "chart" in task:  # files written in step 2 of 3, never named by the answer
            return _code(["x = 1", CHART_FILES_CODE, "final_answer('the chart is ready')"][min(steps, 2)])
        if "report" in task:
            return _code("final_answer(write_report(text='all good'))")
        if "upload" in task:
            return _code("text = open('data.txt').read()\nfinal_answer('file says ' + text)")
        for word in ("alpha", "beta"):
            if word in task:
                self.both_started.wait()  # both sessions' runs are in flight together
                return _code(f"final_answer('{word} done')")
        if "slow" in task:
            assert self.release_slow.wait(120)
            return _code("final_answer('slow done')")
        if "loop" in task:
            assert self.release_stop.wait(120)
            return _code("print('still working')")
        return _code("final_answer('unscripted')")


@tool
def send_email(to: str, body: str) -> str:
    """Send an email.

    Args:
        to: the address.
        body: the text.
    """
    return f"sent to {to}"


REPORTS = Path(tempfile.mkdtemp(prefix="codeloop-ui-reports-"))


@tool
def write_report(text: str) -> str:
    """Write a report file on the host; returns its path.

    Args:
        text: the report.
    """
    path = REPORTS / "report.txt"
    path.write_text(text)
    return str(path)


def _approval(tool: Any, arguments: dict[str, Any], context: Any) -> Any:
    return ASK if getattr(tool, "name", None) == "send_email" else ALLOW


class Factory:
    """Builds each browser session's agent; `mode` breaks it on purpose."""

    def __init__(self, base_url: str, store: Path, pool: Any) -> None:
        self.base_url = base_url
        self.pool = pool
        self.store = store
        self.mode = "ok"

    def __call__(self) -> Any:
        if self.mode == "raise":
            raise RuntimeError("the factory is broken on purpose")
        if self.mode == "not_agent":
            return "just a string"
        model = OpenAIModel(
            "gpt-4o", api_base=self.base_url, api_key="k", retry_base_delay=0.01, max_retries=1
        )
        helper = CodeAgent(
            [],
            model,
            name="helper",
            description="Counts things.",
            executor=self.pool,
            verbosity_level=0,
            store=str(self.store),
        )
        return CodeAgent(
            [send_email, write_report, UserInputTool()],
            model,
            managed_agents=[helper],
            approval=_approval,
            executor=self.pool,  # warm sandboxes: a session's first step does not wait for one to start
            verbosity_level=0,
            store=str(self.store),
            max_steps=4,
        )


class Served:
    def __init__(self, url: str, factory: Factory, script: Script, app: Any) -> None:
        self.url, self.factory, self.script, self.app = url, factory, script, app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import uvicorn

    from codeloop.executors import SandboxPool
    from codeloop.ui import create_app

    script = Script()
    store = tmp_path_factory.mktemp("ui") / "runs.db"
    with ScriptedLLMServer(script) as llm, SandboxPool(3) as pool:
        factory = Factory(llm.base_url, store, pool)
        pool.wait_ready()
        app = create_app(factory, store=str(store), max_file_mb=1)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        try:
            yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}/", factory, script, app)
        finally:
            script.release_slow.set()
            script.release_stop.set()
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, served: Served, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(served.url)
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for number, open_page in enumerate(context.pages):
            open_page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{number}.png"), full_page=True)
        context.close()
        for session in served.app.state.hub.sessions():  # give finished sessions' sandboxes back to the pool
            if not session.busy:
                session.close()


def _send(page: Any, task: str) -> None:
    page.fill("#task", task)
    page.click("#send")


def _last_run(page: Any) -> Any:
    return page.locator("#transcript > .run").last


def test_steps_stream_with_code_logs_observation_answer_and_usage(page: Any) -> None:
    _send(page, "What is the square of something? 6*7")
    run = _last_run(page)
    sync_api.expect(run.locator(".ev-final")).to_contain_text("42")
    sync_api.expect(run.locator(".step")).to_have_count(2)
    sync_api.expect(run.locator(".ev-thought").first).to_have_text("Thought: I multiply first.")
    # highlighted on the server: Pygments' token spans, not plain text
    assert run.locator(".ev-code .hl span").count() > 3
    assert "x = 6 * 7" in run.locator(".ev-code").first.inner_text()
    sync_api.expect(run.locator(".ev-log, .ev-observation").first).to_contain_text("x is 42")
    sync_api.expect(run.locator(".meta").first).to_contain_text(
        re.compile(r"step 1 · \d+ in / \d+ out tokens")
    )
    sync_api.expect(run.locator(".summary")).to_contain_text("success")
    sync_api.expect(page.locator("#runs li")).to_have_count(1)
    sync_api.expect(page.locator("#send")).to_be_enabled()


def test_a_paused_call_is_a_card_and_approving_it_resumes_the_run(page: Any) -> None:
    # A fresh session: resuming a CodeAgent run that follows earlier runs of its session diverges on replay
    # (RunDiverged; reported as its own issue), so the paused run is the session's first.
    _send(page, "Write an email to Bob")
    card = page.locator(".approval-card")
    sync_api.expect(card).to_contain_text("send_email")
    sync_api.expect(card.locator("pre")).to_contain_text('"to": "bob@example.com"')
    sync_api.expect(_last_run(page).locator(".summary")).to_contain_text("awaiting_approval")
    card.locator("button.approve").click()
    sync_api.expect(page.locator(".ev-final").last).to_contain_text("sent to bob@example.com")
    sync_api.expect(page.locator(".approval-card")).to_have_count(0)
    sync_api.expect(page.locator("#runs li").first).to_contain_text("success")


def test_a_denied_call_tells_the_model_why(page: Any) -> None:
    _send(page, "Another email to Bob")
    card = page.locator(".approval-card")
    card.locator("input[name=reason]").fill("not today")
    card.locator("button.deny").click()
    sync_api.expect(page.locator(".ev-error, .ev-observation").last).to_contain_text("not today")


def test_user_input_is_asked_and_answered_in_the_page(page: Any) -> None:
    _send(page, "Greet me by name")
    question = page.locator(".question")
    sync_api.expect(question).to_contain_text("What is your name?")
    question.locator("input").fill("Ada")
    question.locator("button").click()
    sync_api.expect(page.locator(".ev-final").last).to_contain_text("Hello Ada")


def test_an_image_answer_is_shown_and_a_file_answer_downloads(page: Any) -> None:
    _send(page, "draw a red box")
    image = _last_run(page).locator(".ev-final img")
    sync_api.expect(image).to_have_count(1)
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [
        40,
        20,
    ]  # decoded by the browser
    _send(page, "write the report")
    link = _last_run(page).locator(".ev-final a.download")
    sync_api.expect(link).to_have_text("Download report.txt")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "all good"


def test_files_the_code_wrote_are_listed_after_their_step_and_download(
    page: Any, browser: Any, served: Served
) -> None:
    _send(page, "make a chart")
    run = _last_run(page)
    sync_api.expect(run.locator(".ev-final")).to_contain_text("the chart is ready")
    steps = run.locator(".step")
    sync_api.expect(steps).to_have_count(3)
    sync_api.expect(steps.nth(0).locator(".ev-files")).to_have_count(0)  # step 1 wrote nothing
    written = steps.nth(1).locator(".ev-files")
    sync_api.expect(written.locator("li")).to_have_count(3)  # the link out of the sandbox is not offered
    assert "escape" not in written.inner_text()
    sync_api.expect(written.locator("li", has_text="big.bin")).to_contain_text("too large to offer")
    assert written.locator("li", has_text="big.bin").locator("a").count() == 0
    image = written.locator("img")
    sync_api.expect(image).to_have_count(1)
    sync_api.expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [40, 20]
    link = written.locator("a.download", has_text="out/table.csv")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "a,b\n1,2\n"
    assert steps.nth(2).locator(".ev-files").count() == 0  # the final step wrote nothing new
    if os.environ.get("CODELOOP_UPDATE_SCREENSHOT"):  # how docs/ui.png is made
        written.scroll_into_view_if_needed()
        page.screenshot(path=str(Path(__file__).resolve().parent.parent / "docs" / "ui.png"))
    # The link works for its own session only: another browser session gets a 404 for the same address.
    url = served.url + link.get_attribute("href")
    assert page.context.request.get(url).status == 200
    stranger = browser.new_context()
    try:
        stranger.new_page().goto(served.url)  # a session of its own
        refused = stranger.request.get(url)
        assert refused.status == 404 and "no such file in this session" in refused.text()
    finally:
        stranger.close()


def test_managed_agent_steps_are_nested_under_the_caller(page: Any) -> None:
    _send(page, "delegate the counting")
    outer = _last_run(page)
    sync_api.expect(outer.locator(":scope > .ev-final")).to_contain_text("the helper counted 3")
    nested = outer.locator(".run")
    sync_api.expect(nested).to_have_count(1)
    sync_api.expect(nested.locator(".task")).to_contain_text("helper: HELPERTASK")
    sync_api.expect(nested.locator(".ev-code")).to_contain_text("final_answer('the helper counted 3')")


def test_an_uploaded_file_lands_in_the_sandbox(page: Any, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("forty-two")
    page.set_input_files("#files", str(data))
    sync_api.expect(page.locator("#uploaded")).to_contain_text("data.txt")
    _send(page, "read the upload")
    sync_api.expect(page.locator(".ev-final").last).to_contain_text("file says forty-two")


def test_two_sessions_at_once_never_see_each_other(browser: Any, served: Served) -> None:
    pages = []
    for _ in range(2):
        context = browser.new_context()
        context.set_default_timeout(WAIT_MS)
        pages.append(context.new_page())
        pages[-1].goto(served.url)
    try:
        _send(pages[0], "alpha task")
        _send(pages[1], "beta task")  # the script holds both first model calls until both arrived
        for mine, theirs, other in ((pages[0], "alpha", "beta"), (pages[1], "beta", "alpha")):
            sync_api.expect(mine.locator(".ev-final")).to_contain_text(f"{theirs} done")
            sync_api.expect(mine.locator("#runs li")).to_have_count(1)
            assert other not in mine.locator("#transcript").inner_text()
            assert other not in mine.locator("#runs").inner_text()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        pages[0].screenshot(path=str(ARTIFACTS / "two-sessions-0.png"))
        pages[1].screenshot(path=str(ARTIFACTS / "two-sessions-1.png"))
    finally:
        for open_page in pages:
            open_page.context.close()


def test_a_factory_that_fails_is_shown_and_the_server_keeps_serving(browser: Any, served: Served) -> None:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        for mode, expected in (
            ("raise", "RuntimeError: the factory is broken on purpose"),
            ("not_agent", "returned 'just a string', which is not a codeloop agent"),
        ):
            served.factory.mode = mode
            page.goto(served.url)
            sync_api.expect(page.locator("#banner")).to_contain_text(expected)
            sync_api.expect(page.locator("#send")).to_be_disabled()
        served.factory.mode = "ok"
        page.reload()  # the same session tries the factory again
        sync_api.expect(page.locator("#banner")).to_be_hidden()
        _send(page, "square please")
        sync_api.expect(page.locator(".ev-final")).to_contain_text("42")
    finally:
        served.factory.mode = "ok"
        context.close()


def test_a_run_goes_on_after_the_browser_leaves_and_reopening_shows_it(browser: Any, served: Served) -> None:
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        page.goto(served.url)
        _send(page, "a slow job")
        sync_api.expect(_last_run(page).locator(".task")).to_contain_text("a slow job")
        page.close()  # the event stream is cut mid-run
        served.script.release_slow.set()
        hub = served.app.state.hub
        session = next(s for s in hub._sessions.values() if s.busy or "slow" in str(s._log))
        assert session._run is not None
        session._run.join(timeout=120)
        assert not session._run.is_alive(), "the run did not end after its model call was released"
        store = session.agent.store
        [record] = [r for r in store.list_runs(session=session.name) if r.task.startswith("a slow job")]
        assert (record.state, record.output) == ("success", "slow done")
        again = context.new_page()
        again.goto(served.url)
        sync_api.expect(again.locator(".ev-final")).to_contain_text("slow done")
        sync_api.expect(again.locator("#runs li").first).to_contain_text("success")
    finally:
        context.close()


def test_stop_ends_the_run_before_its_next_step(page: Any, served: Served) -> None:
    _send(page, "loop forever")
    sync_api.expect(page.locator("#stop")).to_be_enabled()
    page.click("#stop")
    sync_api.expect(page.locator(".ev-notice").last).to_contain_text("stopping")
    served.script.release_stop.set()
    sync_api.expect(_last_run(page).locator(".summary")).to_contain_text("interrupted")
    sync_api.expect(page.locator("#send")).to_be_enabled()
