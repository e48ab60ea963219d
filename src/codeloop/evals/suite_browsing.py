"""Browsing tasks: read pre-generated pages of an invented town's website, follow links, then compute.

The site is fixed text: `open_page` returns a page with its links written as [text](/path), and `search_site`
finds pages by words. Reading a page is the only way to learn what it says, so an agent has to browse.
"""

from __future__ import annotations

import re
from typing import Any

from ..tools import tool
from .tasks import NamesAnswer, NumberAnswer, TextAnswer, ToolTask

__all__ = ["BROWSING_TASKS", "TASKS"]

SITE = "https://harrowgate.example"

_PAGES: dict[str, tuple[str, str]] = {
    "/": (
        "Harrowgate town website",
        """Welcome to Harrowgate, on the Sella estuary.
Visit: [Museums](/museums) | [Bridges of Harrowgate](/bridges) | [Events calendar](/events/page/1)
Getting around: [Ferry to Sella Isle](/ferry)
Your town: [Town council](/council) | [News](/news)""",
    ),
    "/museums": (
        "Museums",
        """Harrowgate has two museums.
- [Tidewater Museum](/museums/tidewater): boats, nets and the estuary's history.
- [Lantern Works](/museums/lantern-works): a working glass workshop.""",
    ),
    "/museums/tidewater": (
        "Tidewater Museum",
        """The Tidewater Museum is open Tuesday to Sunday, 10:00-17:00.
Tickets are sold at the door; see [ticket prices](/museums/tidewater/prices).
Back to [Museums](/museums).""",
    ),
    "/museums/tidewater/prices": (
        "Tidewater Museum: ticket prices",
        """Ticket prices (GBP):
- Adult: 14.00
- Child (under 16): 6.50
- Senior (65 and over): 9.00
Weekend surcharge: 2.00 on every ticket on Saturdays and Sundays.
Family pass (2 adults and up to 3 children): 38.00, Tuesday to Friday only.""",
    ),
    "/museums/lantern-works": (
        "Lantern Works",
        """Glass-blowing shows daily at 11:00 and 15:00. Entry 5.00 GBP.
Back to [Museums](/museums).""",
    ),
    "/bridges": (
        "Bridges of Harrowgate",
        """Four bridges cross the Sella river in Harrowgate:
- [Kell Bridge](/bridges/kell)
- [Marrow Span](/bridges/marrow)
- [Old Ferry Bridge](/bridges/old-ferry)
- [Tannery Footbridge](/bridges/tannery)""",
    ),
    "/bridges/kell": (
        "Kell Bridge",
        """Kell Bridge carries the coast road.
Built: 1902. Length: 148 m. Rebuilt after the flood of 1953.""",
    ),
    "/bridges/marrow": (
        "Marrow Span",
        """Marrow Span is the newest crossing, for trams and bicycles.
Built: 1988. Length: 210 m.""",
    ),
    "/bridges/old-ferry": (
        "Old Ferry Bridge",
        """The bridge that replaced the Sella ferry crossing.
Built: 1911. Length: 96 m. The ferry it replaced had run since 1780.""",
    ),
    "/bridges/tannery": (
        "Tannery Footbridge",
        """A cast-iron footbridge by the old tannery.
Built: 1874. Length: 41 m. Restored in 2004.""",
    ),
    "/events/page/1": (
        "Events calendar (page 1 of 3)",
        """- 2026-05-30: Spring book fair, entry 3.00 GBP
- 2026-06-02: Estuary bird walk, free
- 2026-06-06: Harbour regatta, free
- 2026-06-07: Lantern Works open night, entry 5.00 GBP
[Next page](/events/page/2)""",
    ),
    "/events/page/2": (
        "Events calendar (page 2 of 3)",
        """- 2026-06-13: Brass band in Quay Park, free
- 2026-06-14: Tidewater Museum late opening, entry 8.00 GBP
- 2026-06-20: Midsummer market, free
- 2026-06-21: Midsummer concert, entry 12.00 GBP
[Previous page](/events/page/1) | [Next page](/events/page/3)""",
    ),
    "/events/page/3": (
        "Events calendar (page 3 of 3)",
        """- 2026-06-27: Sella swim, free
- 2026-07-01: Summer fireworks, free
- 2026-07-04: Boat race, entry 2.00 GBP
[Previous page](/events/page/2)""",
    ),
    "/ferry": (
        "Ferry to Sella Isle",
        """Ferries leave Harrowgate pier for Sella Isle every day at:
07:10, 08:40, 10:15, 12:30, 15:05 and 17:45.
Boarding closes 10 minutes before departure. How long the crossing takes: see [ferry facts](/ferry/facts).""",
    ),
    "/ferry/facts": (
        "Ferry facts",
        """The ferry Sella Queen carries 120 passengers and 14 cars.
The crossing from Harrowgate pier to Sella Isle takes 55 minutes.""",
    ),
    "/council": (
        "Town council",
        """The council's seven members:
[Agnes Pell](/council/agnes-pell), [Bram Oduya](/council/bram-oduya), [Cora Voss](/council/cora-voss),
[Dafydd Rhee](/council/dafydd-rhee), [Elin Marsh](/council/elin-marsh), [Farid Soto](/council/farid-soto),
[Greta Lind](/council/greta-lind)""",
    ),
    "/council/agnes-pell": (
        "Agnes Pell",
        "Councillor for the North ward since 2018. Chairs the harbour committee.",
    ),
    "/council/bram-oduya": ("Bram Oduya", "Councillor for the Quayside ward since 2022."),
    "/council/cora-voss": (
        "Cora Voss",
        "Councillor for the North ward since 2022; earlier for Quayside (2014-2022).",
    ),
    "/council/dafydd-rhee": ("Dafydd Rhee", "Councillor for the South ward since 2010."),
    "/council/elin-marsh": ("Elin Marsh", "Councillor for the Northgate ward since 2020."),
    "/council/farid-soto": ("Farid Soto", "Councillor for the North ward since 2016."),
    "/council/greta-lind": ("Greta Lind", "Councillor for the South ward since 2022."),
    "/news": (
        "News",
        """- The [library](/library) has new opening hours from May.
- Marrow Span closes for repairs on 2026-08-01.""",
    ),
    "/library": (
        "Harrowgate library",
        """Books, newspapers and a children's corner in the old corn exchange.
Opening hours: see [library opening hours](/library/hours).""",
    ),
    "/library/hours": (
        "Library opening hours",
        """From May 2026 the library is open:
Monday, Tuesday, Wednesday and Friday: 09:00-18:00
Thursday: 09:00-20:00
Saturday: 10:00-14:00
Sunday: closed""",
    ),
}


def _path(url: str) -> str:
    path = url.strip()
    if path.startswith(SITE):
        path = path[len(SITE) :]
    path = "/" + path.strip("/") if path.strip("/") else "/"
    return path


@tool
def open_page(url: str) -> str:
    """The text of a page of the Harrowgate town website, with its title first; links read [text](/path).

    Args:
        url: The page's path, e.g. "/" for the home page or "/museums" (the full https://harrowgate.example/...
            address works too).
    """
    path = _path(url)
    if path not in _PAGES:
        raise KeyError(f"no page at {path!r}; follow the links of a page you opened, starting at '/'")
    title, text = _PAGES[path]
    return f"# {title}\n{text}"


@tool
def search_site(query: str) -> list[dict[str, str]]:
    """Search the Harrowgate town website: the pages holding every word of `query` (in their title or text).

    Args:
        query: One or more words, e.g. "ferry timetable".
    """
    words = [w for w in re.findall(r"\w+", query.casefold()) if w]
    if not words:
        raise ValueError("the query has no words to search for")
    hits = []
    for path, (title, text) in _PAGES.items():
        haystack = f"{title}\n{text}".casefold()
        if all(word in haystack for word in words):
            hits.append({"url": path, "title": title})
    return hits


_PAGE_TOOLS: tuple[Any, ...] = (open_page, search_site)

BROWSING_TASKS: tuple[ToolTask, ...] = (
    ToolTask(
        "museum_ticket_total", "browsing",
        "Using the Harrowgate town website (start at its home page), find what the cheapest tickets to the "
        "Tidewater Museum cost in total, in GBP, for 2 adults and 3 children aged 8 to 12 visiting on a Sunday.",
        _PAGE_TOOLS,
        NumberAnswer(57.50, abs_tol=0.01),
        "import re\n"
        "page = open_page('/museums/tidewater/prices')\n"
        "price = lambda label: float(re.search(label + r'[^:]*: (\\d+\\.\\d+)', page).group(1))\n"
        "surcharge = float(re.search(r'surcharge: (\\d+\\.\\d+)', page).group(1))\n"
        "answer = 2 * price('Adult') + 3 * price('Child') + 5 * surcharge  # the family pass is weekdays only",
    ),
    ToolTask(
        "oldest_bridge", "browsing",
        "On the Harrowgate town website, which of the town's bridges was built first? Answer with its name.",
        _PAGE_TOOLS,
        TextAnswer("Tannery Footbridge"),
        "import re\n"
        "links = re.findall(r'\\[([^\\]]+)\\]\\((/bridges/[^)]+)\\)', open_page('/bridges'))\n"
        "built = {name: int(re.search(r'Built: (\\d{4})', open_page(path)).group(1)) for name, path in links}\n"
        "answer = min(built, key=built.get)",
    ),
    ToolTask(
        "north_ward_councillors", "browsing",
        "According to the Harrowgate town website, which town councillors represent the North ward now? List "
        "their names.",
        _PAGE_TOOLS,
        NamesAnswer(("Agnes Pell", "Cora Voss", "Farid Soto")),
        "import re\n"
        "links = re.findall(r'\\[([^\\]]+)\\]\\((/council/[^)]+)\\)', open_page('/council'))\n"
        "answer = [name for name, path in links if 'for the North ward since' in open_page(path)]",
    ),
    ToolTask(
        "free_june_events", "browsing",
        "How many free events does the Harrowgate events calendar list in June 2026? The calendar is on the town "
        "website and has several pages.",
        _PAGE_TOOLS,
        NumberAnswer(5, abs_tol=0.1),
        "count, path = 0, '/events/page/1'\n"
        "while path:\n"
        "    page = open_page(path)\n"
        "    count += sum(1 for line in page.splitlines() if line.startswith('- 2026-06-') and line.endswith('free'))\n"
        "    nxt = [part for part in page.split('[Next page](')[1:]]\n"
        "    path = nxt[0].split(')')[0] if nxt else None\n"
        "answer = count",
    ),
    ToolTask(
        "ferry_arrival", "browsing",
        "I reach Harrowgate pier at 11:20 and take the first ferry I can still board to Sella Isle. At what time "
        "(HH:MM) do I arrive on Sella Isle? The town website has the timetable.",
        _PAGE_TOOLS,
        TextAnswer("13:25"),
        "import re\n"
        "page = open_page('/ferry')\n"
        "close = int(re.search(r'closes (\\d+) minutes', page).group(1))\n"
        "crossing = int(re.search(r'takes (\\d+) minutes', open_page('/ferry/facts')).group(1))\n"
        "mins = [int(h) * 60 + int(m) for h, m in re.findall(r'(\\d\\d):(\\d\\d)', page.split('at:')[1])]\n"
        "t = min(m for m in mins if m - close >= 11 * 60 + 20) + crossing\n"
        "answer = f'{t // 60:02d}:{t % 60:02d}'",
    ),
    ToolTask(
        "library_weekly_hours", "browsing",
        "How many hours a week is the Harrowgate library open under its new opening hours? Search the town "
        "website for them.",
        _PAGE_TOOLS,
        NumberAnswer(51, abs_tol=0.1),
        "import re\n"
        "hit = search_site('library opening hours')\n"
        "page = open_page([h['url'] for h in hit if h['url'].endswith('hours')][0])\n"
        "total = 0\n"
        "for line in page.splitlines():\n"
        "    m = re.search(r'(\\d\\d):(\\d\\d)-(\\d\\d):(\\d\\d)', line)\n"
        "    if m:\n"
        "        a, b, c, d = map(int, m.groups())\n"
        "        days = len(re.findall(r'day', line.split(':')[0]))\n"
        "        total += days * ((c * 60 + d) - (a * 60 + b)) / 60\n"
        "answer = total",
    ),
)  # fmt: skip

TASKS = BROWSING_TASKS
"""This module as a suite of its own: `codeloop eval codeloop.evals.suite_browsing`."""
