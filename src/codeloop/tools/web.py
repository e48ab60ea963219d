"""Tools that reach the web: `web_search`, `visit_webpage`, `wikipedia_search`.

Every endpoint is configurable (base URLs, proxy, TLS verification) so the tests point them at servers on
127.0.0.1; nothing here is tied to the public internet except the defaults. HTTP goes through httpx2
(httpx's successor, which the MCP SDK and the OpenAI SDK already use), falling back to httpx.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from ..errors import AgentToolExecutionError
from .base import Tool

__all__ = [
    "WebSearchTool",
    "DuckDuckGoSearchTool",
    "VisitWebpageTool",
    "WikipediaSearchTool",
    "WebToolError",
    "http_client_module",
]

_USER_AGENT = "codeloop/0.1 (+https://github.com/codeloop; an LLM agent's web tool)"


class WebToolError(AgentToolExecutionError):
    """A web tool could not do its job (refused query, unreachable page, binary content, timeout)."""


def http_client_module() -> Any:
    """httpx2 when installed (it ships with the MCP and OpenAI SDKs), else httpx; a clear error otherwise."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        try:
            import httpx

            return httpx
        except ImportError as exc:
            raise ImportError("the web tools need an HTTP client: pip install 'codeloop[toolbox]'") from exc


class _RateLimiter:
    """At most one call per `interval` seconds; callers wait their turn instead of being refused."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            delay = self._next - now
            self._next = max(now, self._next) + self.interval
        if delay > 0:
            time.sleep(delay)


# ------------------------------------------------------------------------------------------ web_search


class WebSearchTool(Tool):
    """Search the web. DuckDuckGo (through `ddgs`) by default; Brave, Serper or Exa when their key is set.

    Args (constructor):
        engine: "auto" (the first of Brave, Serper, Exa whose API key is set, else DuckDuckGo),
            "duckduckgo", "brave", "serper" or "exa".
        max_results: how many results to return.
        api_key: the engine's key; defaults to BRAVE_API_KEY / SERPER_API_KEY / EXA_API_KEY.
        base_url: where the engine's API lives (tests point it at 127.0.0.1).
        proxy, verify: passed to ddgs for DuckDuckGo.
        min_interval: seconds between two queries from this tool (rate limiting).
    """

    name = "web_search"
    description = (
        "Search the web. Returns a list of results, each a dict with 'title', 'url' and 'snippet'; "
        "open a result with visit_webpage to read it."
    )
    inputs = {"query": {"type": "string", "description": "What to search for."}}
    output_type = "array"
    output_schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "url": {"type": "string"},
                "snippet": {"type": "string"},
            },
        },
    }

    ENGINES = ("duckduckgo", "brave", "serper", "exa")
    _KEYS = {"brave": "BRAVE_API_KEY", "serper": "SERPER_API_KEY", "exa": "EXA_API_KEY"}
    _BASE_URLS = {
        "brave": "https://api.search.brave.com",
        "serper": "https://google.serper.dev",
        "exa": "https://api.exa.ai",
    }

    def __init__(
        self,
        engine: str = "auto",
        *,
        max_results: int = 10,
        api_key: str | None = None,
        base_url: str | None = None,
        proxy: str | None = None,
        verify: bool | str = True,
        timeout: float = 20.0,
        min_interval: float = 1.0,
    ) -> None:
        if engine == "auto":
            engine = next(
                (e for e, var in self._KEYS.items() if api_key or os.environ.get(var)), "duckduckgo"
            )
        if engine not in self.ENGINES:
            raise ValueError(
                f"unknown search engine {engine!r}; choose one of {', '.join(self.ENGINES)} or 'auto'"
            )
        self.engine = engine
        self.api_key = api_key or (os.environ.get(self._KEYS[engine]) if engine in self._KEYS else None)
        if engine in self._KEYS and not self.api_key:
            raise ValueError(
                f"the {engine} engine needs an API key: pass api_key=... or set {self._KEYS[engine]}"
            )
        self.base_url = (base_url or self._BASE_URLS.get(engine, "")).rstrip("/")
        self.max_results = max_results
        self.proxy = proxy
        self.verify = verify
        self.timeout = timeout
        self._limiter = _RateLimiter(min_interval)

    def forward(self, query: str) -> list[dict[str, str]]:
        if not query.strip():
            raise WebToolError("web_search needs a non-empty query.")
        self._limiter.wait()
        search = getattr(self, f"_search_{self.engine}")
        results: list[dict[str, str]] = search(query)
        return results[: self.max_results]

    def _search_duckduckgo(self, query: str) -> list[dict[str, str]]:
        try:
            from ddgs import DDGS
            from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
        except ImportError as exc:
            raise ImportError("DuckDuckGo search needs ddgs: pip install 'codeloop[toolbox]'") from exc
        client = DDGS(proxy=self.proxy, timeout=int(self.timeout), verify=self.verify)
        try:
            hits = client.text(query, max_results=self.max_results, backend="duckduckgo")
        except RatelimitException as exc:
            raise WebToolError(
                f"DuckDuckGo refused the query {query!r} (rate limited: {exc}). Wait before searching again, "
                "or configure another engine (BRAVE_API_KEY, SERPER_API_KEY or EXA_API_KEY)."
            ) from None
        except TimeoutException:
            raise WebToolError(
                f"DuckDuckGo did not answer the query {query!r} within {self.timeout:g} s."
            ) from None
        except DDGSException as exc:
            if "no results" in str(exc).lower():
                # ddgs reports a refused request (HTTP 403/202 from DuckDuckGo) the same way as an empty one.
                raise WebToolError(
                    f"DuckDuckGo returned no results for {query!r}. It answers the same way when it refuses a "
                    "query (rate limiting): try a shorter or different query, or wait before searching again."
                ) from None
            raise WebToolError(
                f"DuckDuckGo refused or failed the query {query!r}: {exc}. Try a shorter query or retry later."
            ) from None
        return [
            {"title": h.get("title", ""), "url": h.get("href", ""), "snippet": h.get("body", "")}
            for h in hits
        ]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        httpx = http_client_module()
        url = self.base_url + path
        try:
            response = httpx.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise WebToolError(f"{self.engine} search could not be reached at {url}: {exc}") from None
        if response.status_code in (401, 403):
            raise WebToolError(f"{self.engine} refused the API key (HTTP {response.status_code}); check it.")
        if response.status_code == 429:
            raise WebToolError(f"{self.engine} refused the query: rate limited (HTTP 429). Wait and retry.")
        if response.status_code >= 400:
            raise WebToolError(
                f"{self.engine} refused the query (HTTP {response.status_code}): {response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError:
            raise WebToolError(f"{self.engine} answered with something that is not JSON.") from None

    def _search_brave(self, query: str) -> list[dict[str, str]]:
        data = self._request(
            "GET",
            "/res/v1/web/search",
            params={"q": query, "count": self.max_results},
            headers={"X-Subscription-Token": self.api_key or "", "Accept": "application/json"},
        )
        hits = (data.get("web") or {}).get("results") or []
        return [
            {
                "title": h.get("title", ""),
                "url": h.get("url", ""),
                "snippet": _strip_tags(h.get("description", "")),
            }
            for h in hits
        ]

    def _search_serper(self, query: str) -> list[dict[str, str]]:
        data = self._request(
            "POST",
            "/search",
            json={"q": query, "num": self.max_results},
            headers={"X-API-KEY": self.api_key or ""},
        )
        return [
            {"title": h.get("title", ""), "url": h.get("link", ""), "snippet": h.get("snippet", "")}
            for h in data.get("organic") or []
        ]

    def _search_exa(self, query: str) -> list[dict[str, str]]:
        data = self._request(
            "POST",
            "/search",
            json={
                "query": query,
                "numResults": self.max_results,
                "contents": {"text": {"maxCharacters": 500}},
            },
            headers={"x-api-key": self.api_key or ""},
        )
        return [
            {"title": h.get("title") or "", "url": h.get("url", ""), "snippet": (h.get("text") or "").strip()}
            for h in data.get("results") or []
        ]


class DuckDuckGoSearchTool(WebSearchTool):
    """`web_search` on DuckDuckGo (through `ddgs`), whatever API keys are set; the smolagents name."""

    def __init__(self, *, max_results: int = 10, **kwargs: Any) -> None:
        super().__init__("duckduckgo", max_results=max_results, **kwargs)


def _strip_tags(text: str) -> str:
    return re.sub(r"<[^>]+>", "", text)


# --------------------------------------------------------------------------------------- visit_webpage

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/javascript",
)


class VisitWebpageTool(Tool):
    """Fetch a web page and return it as Markdown, within a size cap and a total time limit.

    Args (constructor):
        max_chars: the Markdown returned is cut (with a note) past this many characters.
        max_bytes: stop downloading past this many bytes.
        timeout: seconds for the whole fetch, slow servers included.
    """

    name = "visit_webpage"
    description = "Read a web page: fetches an http(s) URL and returns its content as Markdown text."
    inputs = {"url": {"type": "string", "description": "The full http:// or https:// URL of the page."}}
    output_type = "string"

    def __init__(self, *, max_chars: int = 40_000, max_bytes: int = 5_000_000, timeout: float = 20.0) -> None:
        self.max_chars = max_chars
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def forward(self, url: str) -> str:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise WebToolError(
                f"visit_webpage only reads http:// and https:// URLs; {url!r} "
                + (f"uses '{scheme}:'." if scheme else "has no scheme (add https://).")
            )
        try:
            body, content_type, encoding, truncated = await asyncio.wait_for(
                self._download(url), self.timeout
            )
        except asyncio.TimeoutError:
            raise WebToolError(f"{url} did not finish loading within {self.timeout:g} s.") from None
        text = body.decode(encoding or "utf-8", errors="replace")
        if "html" in content_type or (not content_type and text.lstrip()[:1] == "<"):
            text = html_to_markdown(text)
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        notes = []
        if truncated:
            notes.append(f"only the first {self.max_bytes:,} bytes were downloaded")
        if len(text) > self.max_chars:
            notes.append(f"{len(text) - self.max_chars:,} more characters were cut")
            text = text[: self.max_chars]
        if notes:
            text += f"\n\n[... page truncated: {'; '.join(notes)} ...]"
        return text or "(the page is empty)"

    async def _download(self, url: str) -> tuple[bytes, str, str | None, bool]:
        httpx = http_client_module()
        headers = {"User-Agent": _USER_AGENT, "Accept": "text/html,text/plain;q=0.9,*/*;q=0.5"}
        try:
            async with httpx.AsyncClient(
                follow_redirects=True, timeout=self.timeout, headers=headers
            ) as client:
                async with client.stream("GET", url) as response:
                    if response.status_code >= 400:
                        raise WebToolError(
                            f"{url} answered HTTP {response.status_code} {response.reason_phrase}."
                        )
                    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    if content_type and not content_type.startswith(_TEXT_TYPES):
                        size = response.headers.get("content-length")
                        raise WebToolError(
                            f"{url} is binary content ({content_type}"
                            + (f", {int(size):,} bytes" if size and size.isdigit() else "")
                            + "); visit_webpage reads HTML and text only."
                        )
                    chunks: list[bytes] = []
                    received = 0
                    truncated = False
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
                        received += len(chunk)
                        if received >= self.max_bytes:
                            truncated = True
                            break
                    body = b"".join(chunks)[: self.max_bytes]
                    if not content_type and b"\x00" in body[:2048]:
                        raise WebToolError(
                            f"{url} is binary content; visit_webpage reads HTML and text only."
                        )
                    return body, content_type, response.encoding, truncated
        except httpx.HTTPError as exc:
            raise WebToolError(f"{url} could not be fetched: {type(exc).__name__}: {exc}") from None


def html_to_markdown(html: str) -> str:
    """HTML to Markdown with markdownify, after dropping scripts, styles and other non-content."""
    try:
        from bs4 import BeautifulSoup
        from markdownify import MarkdownConverter
    except ImportError as exc:
        raise ImportError("visit_webpage needs markdownify: pip install 'codeloop[toolbox]'") from exc
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe", "head"]):
        tag.decompose()
    return str(MarkdownConverter(heading_style="ATX", bullets="-").convert_soup(soup))


# ------------------------------------------------------------------------------------ wikipedia_search


class WikipediaSearchTool(Tool):
    """Look a topic up on Wikipedia through the MediaWiki API and return the best page's text.

    Args (constructor):
        language: the Wikipedia edition ("en", "fr", ...).
        content: "summary" (the lead section) or "text" (the whole article as plain text).
        base_url: the API root, default `https://{language}.wikipedia.org` (tests use 127.0.0.1).
        max_chars: the text returned is cut (with a note) past this many characters.
    """

    name = "wikipedia_search"
    description = (
        "Search Wikipedia and return the best-matching article: its title, URL and text "
        "(the lead section by default)."
    )
    inputs = {"query": {"type": "string", "description": "The topic to look up, e.g. 'Pont des Arts'."}}
    output_type = "string"

    def __init__(
        self,
        language: str = "en",
        *,
        content: str = "summary",
        base_url: str | None = None,
        max_chars: int = 20_000,
        timeout: float = 20.0,
    ) -> None:
        if content not in ("summary", "text"):
            raise ValueError("content must be 'summary' or 'text'")
        self.language = language
        self.content = content
        self.base_url = (base_url or f"https://{language}.wikipedia.org").rstrip("/")
        self.max_chars = max_chars
        self.timeout = timeout

    def _api(self, **params: Any) -> dict[str, Any]:
        httpx = http_client_module()
        url = f"{self.base_url}/w/api.php"
        try:
            response = httpx.get(
                url,
                params={"format": "json", "formatversion": "2", **params},
                headers={"User-Agent": _USER_AGENT},
                timeout=self.timeout,
                follow_redirects=True,
            )
        except httpx.HTTPError as exc:
            raise WebToolError(f"Wikipedia could not be reached at {url}: {exc}") from None
        if response.status_code >= 400:
            raise WebToolError(f"Wikipedia refused the request (HTTP {response.status_code}).")
        data: dict[str, Any] = response.json()
        if "error" in data:
            raise WebToolError(f"Wikipedia error: {data['error'].get('info', data['error'])}")
        return data

    def forward(self, query: str) -> str:
        hits = self._api(action="query", list="search", srsearch=query, srlimit=1)["query"]["search"]
        if not hits:
            return f"No Wikipedia article matches {query!r}. Try other words or a broader topic."
        title = hits[0]["title"]
        extract_params: dict[str, Any] = {"explaintext": 1, "redirects": 1}
        if self.content == "summary":
            extract_params["exintro"] = 1
        pages = self._api(action="query", prop="extracts|info", inprop="url", titles=title, **extract_params)
        page = pages["query"]["pages"][0]
        text = (page.get("extract") or "").strip()
        if len(text) > self.max_chars:
            text = (
                text[: self.max_chars] + f"\n\n[... {len(text) - self.max_chars:,} more characters cut ...]"
            )
        url = page.get("fullurl") or f"{self.base_url}/wiki/{title.replace(' ', '_')}"
        return f"# {page.get('title', title)}\n{url}\n\n{text}"
