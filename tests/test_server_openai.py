"""The scripted server's own behaviour: routes, recording, script handling, raw wire format."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest

from codeloop.testing.scripted import ScriptRequest
from codeloop.testing.server import Fault, ScriptedLLMServer


def post(url: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, str], bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def test_models_endpoint_lists_model_ids() -> None:
    with ScriptedLLMServer([], model_ids=["alpha", "beta"]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        assert [m.id for m in client.models.list()] == ["alpha", "beta"]


def test_base_url_and_port_are_real() -> None:
    with ScriptedLLMServer(["x"]) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
        assert server.port > 0
        status, _, _ = post(server.base_url + "/chat/completions", chat())
        assert status == 200


def test_sse_stream_wire_format() -> None:
    with ScriptedLLMServer(
        [{"content": "hello world", "usage": {"input_tokens": 3, "output_tokens": 2}}]
    ) as server:
        status, headers, raw = post(
            server.base_url + "/chat/completions", chat(stream=True, stream_options={"include_usage": True})
        )
    assert status == 200 and headers["Content-Type"] == "text/event-stream"
    events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "hello world"
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 3


def test_without_include_usage_no_usage_chunk() -> None:
    with ScriptedLLMServer(["hi"]) as server:
        _, _, raw = post(server.base_url + "/chat/completions", chat(stream=True))
    chunks = [json.loads(e[6:]) for e in raw.decode().split("\n\n") if e and e != "data: [DONE]"]
    assert all("usage" not in c for c in chunks)


def test_requests_and_exchanges_are_recorded() -> None:
    with ScriptedLLMServer(["a", "b"]) as server:
        post(server.base_url + "/chat/completions", chat(temperature=0))
        post(server.base_url + "/chat/completions", chat(seed=3))
    assert server.requests == [chat(temperature=0), chat(seed=3)]
    assert [e.path for e in server.exchanges] == ["/v1/chat/completions"] * 2
    assert server.exchanges[0].headers["content-type"] == "application/json"


def test_script_function_sees_index_raw_body_and_neutral_messages() -> None:
    seen: list[ScriptRequest] = []

    def script(request: ScriptRequest) -> str:
        seen.append(request)
        return f"reply {request.index}"

    with ScriptedLLMServer(script) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="k")
        texts = [
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "q"}], stop=["END"]
            )
            .choices[0]
            .message.content
            for _ in range(2)
        ]
    assert texts == ["reply 0", "reply 1"]
    assert [r.index for r in seen] == [0, 1]
    assert seen[0].raw["model"] == "m" and seen[0].stop == ["END"]
    assert seen[0].messages[0].role == "user" and seen[0].messages[0].content == "q"


def test_exhausted_script_is_an_error_the_client_sees() -> None:
    with ScriptedLLMServer(["only one"]) as server:
        post(server.base_url + "/chat/completions", chat())
        status, _, raw = post(server.base_url + "/chat/completions", chat())
    assert status == 500
    assert "the script has 1 replies; request 2 asked for another" in json.loads(raw)["error"]["message"]


def test_broken_script_function_is_reported() -> None:
    def script(request: ScriptRequest) -> str:
        raise RuntimeError("script bug")

    with ScriptedLLMServer(script) as server:
        status, _, raw = post(server.base_url + "/chat/completions", chat())
    assert status == 500 and "script bug" in raw.decode()


def test_unknown_route_and_non_json_body() -> None:
    with ScriptedLLMServer(["x"]) as server:
        assert post(server.url + "/v2/nothing", chat())[0] == 404
        status, _, raw = post(server.base_url + "/chat/completions", b"{not json")
    assert status == 400 and b"not JSON" in raw


def test_rate_limit_fault_sends_retry_after_headers() -> None:
    with ScriptedLLMServer([Fault.rate_limit(retry_after=1.5)]) as server:
        status, headers, raw = post(server.base_url + "/chat/completions", chat())
    assert status == 429
    assert headers["Retry-After"] == "2" and headers["retry-after-ms"] == "1500"
    assert json.loads(raw)["error"]["type"] == "rate_limit_error"


def test_azure_route_needs_api_version() -> None:
    with ScriptedLLMServer(["x", "y"]) as server:
        route = server.url + "/openai/deployments/my-gpt4o/chat/completions"
        assert post(route, chat())[0] == 404
        status, _, raw = post(route + "?api-version=2024-10-21", chat())
    assert status == 200 and json.loads(raw)["model"] == "my-gpt4o"


def test_honor_stop_cuts_reply_text_like_a_real_server() -> None:
    with ScriptedLLMServer(["keep<stop>drop", "keep<stop>drop"]) as server:
        _, _, cut = post(server.base_url + "/chat/completions", chat(stop=["<stop>"]))
        server.honor_stop = False
        _, _, whole = post(server.base_url + "/chat/completions", chat(stop=["<stop>"]))
    assert json.loads(cut)["choices"][0]["message"]["content"] == "keep"
    assert json.loads(whole)["choices"][0]["message"]["content"] == "keep<stop>drop"


@pytest.mark.parametrize("stream", [False, True])
def test_close_releases_hanging_requests(stream: bool) -> None:
    # The hang and the client's timeout outlast the test's waits by far: only close() can end the call in time.
    server = ScriptedLLMServer([Fault.hang(600)])
    client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0, timeout=300)
    import threading
    import time

    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "q"}], stream=stream
            )
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.requests:  # the request is in, and hanging
        assert time.monotonic() < deadline and thread.is_alive(), f"the request never arrived: {errors}"
        time.sleep(0.05)
    server.close()
    thread.join(60)
    assert not thread.is_alive() and errors
