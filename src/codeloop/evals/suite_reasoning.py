"""Filtering, decoding and planning tasks: read records with tools, then select, decode or schedule.

Every record here is invented, so a model cannot answer from memory: it has to call the tools and read what they
return before it uses it.
"""

from __future__ import annotations

import base64
from typing import Any

from ..tools import tool
from .tasks import NamesAnswer, NumberAnswer, TextAnswer, ToolTask

__all__ = ["REASONING_TASKS"]


def _known(table: dict[str, Any], key: str, what: str) -> Any:
    # Tools answer an unknown key with the keys they know: a model that guessed a spelling can correct it.
    if key not in table:
        raise KeyError(f"unknown {what} {key!r}; known {what}s: {', '.join(sorted(table))}")
    return table[key]


# --- cheapest_good_hotel ----------------------------------------------------------------------------------------

_HOTELS = {
    "Lumenport": {
        "Harbor Lights": (132, 4.4), "Saltwind Inn": (89, 3.7), "The Gilded Oar": (158, 4.8),
        "Pier Nine Lodge": (97, 4.1), "Copperfield House": (104, 4.0), "Driftwood Rooms": (79, 3.2),
    }
}  # fmt: skip
_RATINGS = {name: rating for hotels in _HOTELS.values() for name, (_, rating) in hotels.items()}


@tool
def search_hotels(city: str) -> list[dict[str, Any]]:
    """The hotels of a city, as dicts with keys "name" and "price_per_night" (US dollars).

    Args:
        city: The city's name.
    """
    return [
        {"name": name, "price_per_night": price} for name, (price, _) in _known(_HOTELS, city, "city").items()
    ]


@tool
def get_hotel_rating(hotel: str) -> float:
    """A hotel's average guest rating, from 1.0 to 5.0.

    Args:
        hotel: The hotel's name.
    """
    return float(_known(_RATINGS, hotel, "hotel"))


# --- caesar_message ---------------------------------------------------------------------------------------------

_MESSAGES = {"m-17": ("tlla ha aol uvyao nhal", 7), "m-18": ("ebiil", 23)}


@tool
def get_encrypted_message(message_id: str) -> str:
    """The encrypted text of a message.

    Args:
        message_id: The message's id, e.g. "m-1".
    """
    return str(_known(_MESSAGES, message_id, "message")[0])


@tool
def get_message_key(message_id: str) -> int:
    """The key a message was encrypted with: each letter was shifted forward in the alphabet by this many places.

    Args:
        message_id: The message's id, e.g. "m-1".
    """
    return int(_known(_MESSAGES, message_id, "message")[1])


@tool
def shift_letters(text: str, shift: int) -> str:
    """Shift every letter of `text` forward in the alphabet by `shift` places (a negative shift goes back),
    wrapping from z to a; other characters stay as they are.

    Args:
        text: The text to shift.
        shift: How many places to shift each letter.
    """
    out = []
    for ch in text:
        if ch.isascii() and ch.isalpha():
            start = ord("a") if ch.islower() else ord("A")
            out.append(chr(start + (ord(ch) - start + shift) % 26))
        else:
            out.append(ch)
    return "".join(out)


# --- restock_soon -----------------------------------------------------------------------------------------------

_STOCK = {
    "gauze": (120, 30.0),
    "saline": (300, 40.0),
    "gloves": (90, 25.0),
    "syringes": (500, 45.0),
    "masks": (60, 12.0),
}


@tool
def list_supplies() -> list[str]:
    """The names of all supplies the clinic keeps in stock."""
    return sorted(_STOCK)


@tool
def get_stock_level(supply: str) -> int:
    """How many units of a supply are in stock.

    Args:
        supply: The supply's name.
    """
    return int(_known(_STOCK, supply, "supply")[0])


@tool
def get_daily_usage(supply: str) -> float:
    """How many units of a supply the clinic uses per day.

    Args:
        supply: The supply's name.
    """
    return float(_known(_STOCK, supply, "supply")[1])


# --- note_word_count --------------------------------------------------------------------------------------------

_NOTES = {"n-204": "dGhlIGxhbnRlcm4gZmVzdGl2YWwgbW92ZXMgdG8gdGhlIG9sZCBxdWFycnkgb24gZnJpZGF5IGV2ZW5pbmc="}


@tool
def get_note(note_id: str) -> str:
    """A note as stored: base64-encoded UTF-8 text.

    Args:
        note_id: The note's id, e.g. "n-1".
    """
    return str(_known(_NOTES, note_id, "note"))


@tool
def decode_base64(data: str) -> str:
    """Decode base64 data to UTF-8 text.

    Args:
        data: The base64 text.
    """
    return base64.b64decode(data).decode("utf-8")


# --- meeting_slot -----------------------------------------------------------------------------------------------

_BUSY = {
    "Ana": [["09:00", "10:30"], ["13:00", "14:00"]],
    "Bo": [["10:30", "11:00"], ["11:30", "12:30"]],
    "Cem": [["09:00", "09:30"], ["14:30", "16:00"]],
}
_OFFICE_HOURS = {"Thursday": {"start": "09:00", "end": "17:00"}, "Friday": {"start": "09:00", "end": "13:00"}}


@tool
def get_busy_times(person: str) -> list[list[str]]:
    """When a person is busy on Thursday, as [start, end] pairs of "HH:MM" times.

    Args:
        person: The person's first name.
    """
    return [list(pair) for pair in _known(_BUSY, person, "person")]


@tool
def get_office_hours(day: str) -> dict[str, str]:
    """The office's opening hours on a weekday, as {"start": "HH:MM", "end": "HH:MM"}.

    Args:
        day: The weekday, e.g. "Monday".
    """
    return dict(_known(_OFFICE_HOURS, day, "day"))


# --- overdue_titles ---------------------------------------------------------------------------------------------

_LOANS = {
    "M-88": [
        ("B-301", "2026-03-01"),
        ("B-117", "2026-03-20"),
        ("B-442", "2026-02-27"),
        ("B-205", "2026-03-15"),
    ]
}
_TITLES = {
    "B-301": "The Salt Cartographer", "B-117": "Nine Quiet Engines", "B-442": "A Field Guide to Fog",
    "B-205": "Orchard of Clocks",
}  # fmt: skip


@tool
def get_loans(member_id: str) -> list[dict[str, str]]:
    """A library member's loans, as dicts with keys "book_id" and "due" (a date "YYYY-MM-DD").

    Args:
        member_id: The member's id, e.g. "M-1".
    """
    return [{"book_id": book, "due": due} for book, due in _known(_LOANS, member_id, "member")]


@tool
def get_book_title(book_id: str) -> str:
    """The title of a book.

    Args:
        book_id: The book's id, e.g. "B-1".
    """
    return str(_known(_TITLES, book_id, "book"))


# --- palette_red_sum --------------------------------------------------------------------------------------------

_PALETTES = {"dusk": ["#3A1F5D", "#C83660", "#F1A66A", "#0B0C10"], "moss": ["#4A5D23", "#8A9A5B"]}


@tool
def get_palette(name: str) -> list[str]:
    """The colors of a palette, as hex codes like "#RRGGBB".

    Args:
        name: The palette's name.
    """
    return list(_known(_PALETTES, name, "palette"))


@tool
def hex_to_rgb(color: str) -> list[int]:
    """Convert a hex color "#RRGGBB" to its [red, green, blue] components, each 0-255.

    Args:
        color: The color, e.g. "#FF8800".
    """
    digits = color.lstrip("#")
    return [int(digits[i : i + 2], 16) for i in (0, 2, 4)]


# --- best_rated_kettle ------------------------------------------------------------------------------------------

_PRODUCTS = {"kettles": ["K-10", "K-11", "K-12", "K-13", "K-14"], "toasters": ["T-1"]}
_REVIEWS = {
    "K-10": [5, 4, 4, 3],
    "K-11": [5, 5, 4, 2, 4],
    "K-12": [4, 5, 5, 4],
    "K-13": [5, 5, 5, 1],
    "K-14": [3, 4],
    "T-1": [5],
}
_PRODUCT_NAMES = {
    "K-10": "Arden Steel Kettle", "K-11": "Brightwell Stovetop", "K-12": "Tessel Copper Kettle",
    "K-13": "Quickboil Mini", "K-14": "Hearth Classic", "T-1": "Crumbmaster 2",
}  # fmt: skip


@tool
def list_products(category: str) -> list[str]:
    """The ids of the products in a category.

    Args:
        category: The category, e.g. "kettles".
    """
    return list(_known(_PRODUCTS, category, "category"))


@tool
def get_review_scores(product_id: str) -> list[int]:
    """The star scores (1 to 5) of every review of a product.

    Args:
        product_id: The product's id.
    """
    return list(_known(_REVIEWS, product_id, "product"))


@tool
def get_product_name(product_id: str) -> str:
    """A product's name.

    Args:
        product_id: The product's id.
    """
    return str(_known(_PRODUCT_NAMES, product_id, "product"))


# --- latest_train -----------------------------------------------------------------------------------------------

_TRAINS = {
    ("Ebbington", "Farrow"): [
        {"train": "ET 403", "departs": "13:10", "arrives": "15:50"}, {"train": "ET 401", "departs": "14:05", "arrives": "16:40"},
        {"train": "ET 405", "departs": "15:20", "arrives": "17:55"}, {"train": "ET 409", "departs": "16:30", "arrives": "17:58"},
        {"train": "ET 407", "departs": "15:45", "arrives": "18:10"},
    ]
}  # fmt: skip
_WALKS = {("Farrow", "Town Hall"): 10, ("Farrow", "Museum"): 4}


@tool
def list_trains(origin: str, destination: str) -> list[dict[str, str]]:
    """Today's direct trains between two stations, as dicts with keys "train", "departs" and "arrives" ("HH:MM").

    Args:
        origin: The station of departure.
        destination: The station of arrival.
    """
    if (origin, destination) not in _TRAINS:
        raise KeyError(f"no direct trains from {origin!r} to {destination!r}; known: Ebbington to Farrow")
    return [dict(train) for train in _TRAINS[(origin, destination)]]


@tool
def get_walking_minutes(station: str, place: str) -> int:
    """How many minutes it takes to walk from a station to a place in its town.

    Args:
        station: The station's name.
        place: Where to walk to.
    """
    if (station, place) not in _WALKS:
        raise KeyError(
            f"no walking time from {station!r} to {place!r}; known: Town Hall and Museum from Farrow"
        )
    return _WALKS[(station, place)]


# --- morse_signal -----------------------------------------------------------------------------------------------

_SIGNALS = {"S-3": ".-. . -.. / ..-. --- -..-", "S-4": "... --- ..."}
_MORSE = {
    ".-": "A", "-...": "B", "-.-.": "C", "-..": "D", ".": "E", "..-.": "F", "--.": "G", "....": "H", "..": "I",
    ".---": "J", "-.-": "K", ".-..": "L", "--": "M", "-.": "N", "---": "O", ".--.": "P", "--.-": "Q", ".-.": "R",
    "...": "S", "-": "T", "..-": "U", "...-": "V", ".--": "W", "-..-": "X", "-.--": "Y", "--..": "Z",
}  # fmt: skip


@tool
def get_signal(signal_id: str) -> str:
    """A recorded signal in Morse code: letters separated by spaces, words by " / ".

    Args:
        signal_id: The signal's id, e.g. "S-1".
    """
    return str(_known(_SIGNALS, signal_id, "signal"))


@tool
def morse_to_text(code: str) -> str:
    """Decode Morse code (letters separated by spaces, words by " / ") to upper-case text.

    Args:
        code: The Morse code.
    """
    words = []
    for word in code.split("/"):
        letters = word.split()
        unknown = [letter for letter in letters if letter not in _MORSE]
        if unknown:
            raise ValueError(f"not Morse letters: {unknown}")
        words.append("".join(_MORSE[letter] for letter in letters))
    return " ".join(words)


REASONING_TASKS: tuple[ToolTask, ...] = (
    ToolTask(
        "cheapest_good_hotel", "filtering",
        "Which hotel in Lumenport with a guest rating of at least 4.0 is the cheapest per night? Answer with its name.",
        (search_hotels, get_hotel_rating),
        TextAnswer("Pier Nine Lodge"),
        "good = [h for h in search_hotels('Lumenport') if get_hotel_rating(h['name']) >= 4.0]\n"
        "answer = min(good, key=lambda h: h['price_per_night'])['name']",
    ),
    ToolTask(
        "caesar_message", "decoding",
        "Decrypt message m-17: each of its letters was shifted forward in the alphabet by the message's key. "
        "Answer with the plain text.",
        (get_encrypted_message, get_message_key, shift_letters),
        TextAnswer("meet at the north gate"),
        "answer = shift_letters(get_encrypted_message('m-17'), -get_message_key('m-17'))",
    ),
    ToolTask(
        "restock_soon", "filtering",
        "At their current daily usage, which of the clinic's supplies run out in fewer than 5 days? "
        "List their names.",
        (list_supplies, get_stock_level, get_daily_usage),
        NamesAnswer(("gauze", "gloves")),
        "answer = [s for s in list_supplies() if get_stock_level(s) / get_daily_usage(s) < 5]",
    ),
    ToolTask(
        "note_word_count", "decoding",
        "How many words does note n-204 contain once decoded?",
        (get_note, decode_base64),
        NumberAnswer(11, abs_tol=0.5),
        "answer = len(decode_base64(get_note('n-204')).split())",
    ),
    ToolTask(
        "meeting_slot", "planning",
        "Ana, Bo and Cem need a one-hour meeting on Thursday within office hours. What is the earliest start "
        "time (HH:MM) at which all three are free?",
        (get_busy_times, get_office_hours),
        TextAnswer("16:00"),
        "def minutes(t):\n    h, m = map(int, t.split(':'))\n    return h * 60 + m\n"
        "hours = get_office_hours('Thursday')\n"
        "busy = [(minutes(a), minutes(b)) for p in ['Ana', 'Bo', 'Cem'] for a, b in get_busy_times(p)]\n"
        "start = minutes(hours['start'])\n"
        "while any(a < start + 60 and start < b for a, b in busy):\n    start += 5\n"
        "assert start + 60 <= minutes(hours['end'])\n"
        "answer = f'{start // 60:02d}:{start % 60:02d}'",
    ),
    ToolTask(
        "overdue_titles", "filtering",
        "Library member M-88 returns nothing before 2026-03-15. Which of their books are overdue on that day "
        "(due strictly before it)? Answer with the titles.",
        (get_loans, get_book_title),
        NamesAnswer(("The Salt Cartographer", "A Field Guide to Fog")),
        "answer = [get_book_title(l['book_id']) for l in get_loans('M-88') if l['due'] < '2026-03-15']",
    ),
    ToolTask(
        "palette_red_sum", "decoding",
        "What is the sum of the red components (0-255) of all the colors in the palette 'dusk'?",
        (get_palette, hex_to_rgb),
        NumberAnswer(510, abs_tol=0.5),
        "answer = sum(hex_to_rgb(c)[0] for c in get_palette('dusk'))",
    ),
    ToolTask(
        "best_rated_kettle", "filtering",
        "Which kettle has the highest average review score? Answer with the product's name.",
        (list_products, get_review_scores, get_product_name),
        TextAnswer("Tessel Copper Kettle"),
        "def mean(p):\n    s = get_review_scores(p)\n    return sum(s) / len(s)\n"
        "answer = get_product_name(max(list_products('kettles'), key=mean))",
    ),
    ToolTask(
        "latest_train", "planning",
        "I must be at the Town Hall in Farrow by 18:05 and I walk there from Farrow station. Which is the latest "
        "train from Ebbington that gets me there in time? Answer with the train number.",
        (list_trains, get_walking_minutes),
        TextAnswer("ET 405"),
        "def minutes(t):\n    h, m = map(int, t.split(':'))\n    return h * 60 + m\n"
        "walk = get_walking_minutes('Farrow', 'Town Hall')\n"
        "ok = [t for t in list_trains('Ebbington', 'Farrow') if minutes(t['arrives']) + walk <= minutes('18:05')]\n"
        "answer = max(ok, key=lambda t: minutes(t['departs']))['train']",
    ),
    ToolTask(
        "morse_signal", "decoding",
        "What words does the Morse signal S-3 spell?",
        (get_signal, morse_to_text),
        TextAnswer("RED FOX"),
        "answer = morse_to_text(get_signal('S-3'))",
    ),
)  # fmt: skip
