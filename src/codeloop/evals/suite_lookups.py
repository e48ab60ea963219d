"""Look-up and conversion tasks: fetch fixed records with tools, convert units or currencies, combine them.

Every name, price and rate here is invented, so a model cannot answer from memory: it has to call the tools.
"""

from __future__ import annotations

from typing import Any

from ..tools import tool
from .tasks import NumberAnswer, TextAnswer, ToolTask

__all__ = ["LOOKUP_TASKS"]


def _known(table: dict[str, Any], key: str, what: str) -> Any:
    # Tools answer an unknown key with the keys they know: a model that guessed a spelling can correct it.
    if key not in table:
        raise KeyError(f"unknown {what} {key!r}; known {what}s: {', '.join(sorted(table))}")
    return table[key]


# --- currencies (shared by two tasks) ---------------------------------------------------------------------------

_USD_PER_UNIT = {"USD": 1.0, "EUR": 1.09, "GBP": 1.27, "JPY": 0.0068, "CHF": 1.13}


@tool
def get_exchange_rate(base: str, quote: str) -> float:
    """How many units of currency `quote` one unit of currency `base` buys.

    Args:
        base: ISO code of the currency converted from, e.g. "USD".
        quote: ISO code of the currency converted to, e.g. "EUR".
    """
    rate = _known(_USD_PER_UNIT, base.upper(), "currency") / _known(_USD_PER_UNIT, quote.upper(), "currency")
    return round(rate, 6)


# --- order_total_eur --------------------------------------------------------------------------------------------

_ORDERS = {
    "A-1042": [
        {"sku": "LMP-7", "quantity": 3},
        {"sku": "CBL-2", "quantity": 5},
        {"sku": "DSK-1", "quantity": 1},
    ],
    "A-1043": [{"sku": "CHR-4", "quantity": 2}],
}
_PRICES_USD = {"LMP-7": 24.5, "CBL-2": 3.2, "DSK-1": 189.0, "CHR-4": 75.25}


@tool
def get_order_items(order_id: str) -> list[dict[str, Any]]:
    """The items of an order, as dicts with keys "sku" and "quantity".

    Args:
        order_id: The order's id, e.g. "A-1000".
    """
    return [dict(item) for item in _known(_ORDERS, order_id, "order")]


@tool
def get_unit_price_usd(sku: str) -> float:
    """The price in US dollars of one unit of a product.

    Args:
        sku: The product's stock-keeping unit code.
    """
    return float(_known(_PRICES_USD, sku, "sku"))


# --- flight_minutes ---------------------------------------------------------------------------------------------

_FLIGHTS = {"QX 318": {"from": "KVX", "to": "ORM", "departs_local": "08:45", "arrives_local": "13:10"}}
_UTC_OFFSETS = {"KVX": 2, "ORM": -1, "TLN": 0}


@tool
def get_flight(flight_number: str) -> dict[str, str]:
    """A flight's airports and its departure and arrival times, each in the local time of its airport.

    Args:
        flight_number: The flight number, e.g. "QX 100".
    """
    return dict(_known(_FLIGHTS, flight_number, "flight"))


@tool
def get_utc_offset(airport: str) -> int:
    """The airport's local time minus UTC, in hours.

    Args:
        airport: The airport's three-letter code.
    """
    return int(_known(_UTC_OFFSETS, airport, "airport"))


# --- temperature_spread_f ---------------------------------------------------------------------------------------

_TEMPERATURES_C = {"Varnholm": -3.5, "Ostrava Nova": 12.0, "Quillby": 21.5, "Maresk": 7.25}


@tool
def get_city_temperature_c(city: str) -> float:
    """The temperature in a city right now, in degrees Celsius.

    Args:
        city: The city's name.
    """
    return float(_known(_TEMPERATURES_C, city, "city"))


@tool
def celsius_to_fahrenheit(celsius: float) -> float:
    """Convert a temperature from degrees Celsius to degrees Fahrenheit.

    Args:
        celsius: The temperature in degrees Celsius.
    """
    return celsius * 9 / 5 + 32


# --- department_mean_salary -------------------------------------------------------------------------------------

_DEPARTMENTS = {
    "Research": ["Ines Okafor", "Tomas Brandt", "Yuki Sato", "Pavel Dvorak"],
    "Sales": ["Mara Lind", "Joel Ekwueme"],
}
_SALARIES = {
    "Ines Okafor": 71200, "Tomas Brandt": 68400, "Yuki Sato": 80150, "Pavel Dvorak": 59950,
    "Mara Lind": 64000, "Joel Ekwueme": 58300,
}  # fmt: skip


@tool
def list_employees(department: str) -> list[str]:
    """The names of everyone in a department.

    Args:
        department: The department's name, e.g. "Sales".
    """
    return list(_known(_DEPARTMENTS, department, "department"))


@tool
def get_salary(employee: str) -> int:
    """An employee's annual salary in dollars.

    Args:
        employee: The employee's full name.
    """
    return int(_known(_SALARIES, employee, "employee"))


# --- parcel_shipping_cost ---------------------------------------------------------------------------------------

_PARCELS = {"P-559": {"weight_lb": 18.0, "zone": "C"}, "P-560": {"weight_lb": 2.5, "zone": "A"}}
_RATES_PER_KG = {"A": 2.1, "B": 3.4, "C": 4.75}


@tool
def get_parcel(parcel_id: str) -> dict[str, Any]:
    """A parcel's weight in pounds ("weight_lb") and its delivery zone ("zone").

    Args:
        parcel_id: The parcel's id, e.g. "P-100".
    """
    return dict(_known(_PARCELS, parcel_id, "parcel"))


@tool
def pounds_to_kg(pounds: float) -> float:
    """Convert a weight from pounds to kilograms.

    Args:
        pounds: The weight in pounds.
    """
    return pounds * 0.45359237


@tool
def get_rate_per_kg(zone: str) -> float:
    """The shipping price in dollars per kilogram for a delivery zone.

    Args:
        zone: The delivery zone letter.
    """
    return float(_known(_RATES_PER_KG, zone, "zone"))


# --- recipe_ounces ----------------------------------------------------------------------------------------------

_RECIPES = {"Hollow Ridge Loaf": {"servings": 4, "ingredients_g": {"flour": 250, "butter": 120, "sugar": 90}}}


@tool
def get_recipe(dish: str) -> dict[str, Any]:
    """A recipe: how many people it serves ("servings") and grams of each ingredient ("ingredients_g").

    Args:
        dish: The dish's name.
    """
    recipe = _known(_RECIPES, dish, "dish")
    return {"servings": recipe["servings"], "ingredients_g": dict(recipe["ingredients_g"])}


@tool
def grams_to_ounces(grams: float) -> float:
    """Convert a weight from grams to ounces.

    Args:
        grams: The weight in grams.
    """
    return grams / 28.349523125


# --- portfolio_value --------------------------------------------------------------------------------------------

_HOLDINGS = {"ACC-77": {"VRDX": 12, "KOLM": 40, "ZENP": 7}}
_SHARE_PRICES = {"VRDX": 143.2, "KOLM": 18.75, "ZENP": 402.1, "QTRL": 9.9}


@tool
def get_holdings(account_id: str) -> dict[str, int]:
    """The shares held in an account, as {ticker: number of shares}.

    Args:
        account_id: The account's id, e.g. "ACC-10".
    """
    return dict(_known(_HOLDINGS, account_id, "account"))


@tool
def get_share_price(ticker: str) -> float:
    """The current price of one share, in US dollars.

    Args:
        ticker: The share's ticker symbol.
    """
    return float(_known(_SHARE_PRICES, ticker, "ticker"))


# --- route_miles ------------------------------------------------------------------------------------------------

_ROADS_KM = {
    frozenset({"Arlo", "Brennic"}): 112.4, frozenset({"Brennic", "Cask"}): 87.9,
    frozenset({"Cask", "Dunmere"}): 143.6, frozenset({"Arlo", "Dunmere"}): 301.0,
}  # fmt: skip


@tool
def get_road_distance_km(origin: str, destination: str) -> float:
    """The road distance between two neighbouring towns, in kilometres.

    Args:
        origin: One town.
        destination: The other town.
    """
    key = frozenset({origin, destination})
    if key not in _ROADS_KM:
        known = ", ".join(sorted(" - ".join(sorted(pair)) for pair in _ROADS_KM))
        raise KeyError(f"no direct road between {origin!r} and {destination!r}; direct roads: {known}")
    return _ROADS_KM[key]


@tool
def km_to_miles(km: float) -> float:
    """Convert a distance from kilometres to miles.

    Args:
        km: The distance in kilometres.
    """
    return km / 1.609344


# --- densest_country --------------------------------------------------------------------------------------------

_POPULATIONS = {"Aldovia": 4_820_000, "Brisca": 12_450_000, "Corvane": 2_100_000}
_AREAS_KM2 = {"Aldovia": 61_300, "Brisca": 198_000, "Corvane": 19_800}


@tool
def get_population(country: str) -> int:
    """A country's population.

    Args:
        country: The country's name.
    """
    return int(_known(_POPULATIONS, country, "country"))


@tool
def get_area_km2(country: str) -> int:
    """A country's land area in square kilometres.

    Args:
        country: The country's name.
    """
    return int(_known(_AREAS_KM2, country, "country"))


# --- runner_speed_kmh -------------------------------------------------------------------------------------------

_RACE_RESULTS = {
    "Ilse Marr": {"distance_m": 10000, "time": "00:41:36"},
    "Oren Vale": {"distance_m": 5000, "time": "00:19:02"},
}


@tool
def get_race_result(runner: str) -> dict[str, Any]:
    """A runner's result in the harbour race: distance in metres ("distance_m") and time as "HH:MM:SS" ("time").

    Args:
        runner: The runner's full name.
    """
    return dict(_known(_RACE_RESULTS, runner, "runner"))


@tool
def duration_to_seconds(duration: str) -> int:
    """Convert a duration written "HH:MM:SS" to a number of seconds.

    Args:
        duration: The duration, e.g. "01:02:03".
    """
    hours, minutes, seconds = (int(part) for part in duration.split(":"))
    return hours * 3600 + minutes * 60 + seconds


# --- trip_expenses_gbp ------------------------------------------------------------------------------------------

_TRIPS = {
    "T-9": [
        {"item": "hotel", "amount": 120.0, "currency": "EUR"}, {"item": "train", "amount": 45.5, "currency": "USD"},
        {"item": "dinner", "amount": 8200.0, "currency": "JPY"}, {"item": "museum", "amount": 60.0, "currency": "GBP"},
    ]
}  # fmt: skip


@tool
def get_trip_expenses(trip_id: str) -> list[dict[str, Any]]:
    """A trip's expenses, as dicts with keys "item", "amount" and "currency" (an ISO code).

    Args:
        trip_id: The trip's id, e.g. "T-1".
    """
    return [dict(expense) for expense in _known(_TRIPS, trip_id, "trip")]


# --- invoice_gross ----------------------------------------------------------------------------------------------

_INVOICES = {
    "INV-2291": {
        "customer_country": "Estrella",
        "lines": [{"description": "consulting", "net_amount": 420.0}, {"description": "travel", "net_amount": 75.5},
                  {"description": "materials", "net_amount": 12.25}],
    }
}  # fmt: skip
_VAT_PERCENT = {"Estrella": 21.0, "Norland": 25.0, "Pallas": 7.5}


@tool
def get_invoice(invoice_id: str) -> dict[str, Any]:
    """An invoice: the customer's country ("customer_country") and its lines ("lines", each with "net_amount").

    Args:
        invoice_id: The invoice's id, e.g. "INV-1000".
    """
    invoice = _known(_INVOICES, invoice_id, "invoice")
    return {
        "customer_country": invoice["customer_country"],
        "lines": [dict(line) for line in invoice["lines"]],
    }


@tool
def get_vat_rate_percent(country: str) -> float:
    """The VAT rate of a country, in percent.

    Args:
        country: The country's name.
    """
    return float(_known(_VAT_PERCENT, country, "country"))


LOOKUP_TASKS: tuple[ToolTask, ...] = (
    ToolTask(
        "order_total_eur", "conversion",
        "What is the total price of order A-1042 in euros? Round to 2 decimals.",
        (get_order_items, get_unit_price_usd, get_exchange_rate),
        NumberAnswer(255.50, abs_tol=0.01),
        "items = get_order_items('A-1042')\n"
        "usd = sum(i['quantity'] * get_unit_price_usd(i['sku']) for i in items)\n"
        "answer = round(usd * get_exchange_rate('USD', 'EUR'), 2)",
    ),
    ToolTask(
        "flight_minutes", "conversion",
        "Flight QX 318 departs and arrives at the local times of its airports. How many minutes is it in the air?",
        (get_flight, get_utc_offset),
        NumberAnswer(445, abs_tol=0.5),
        "f = get_flight('QX 318')\n"
        "def utc_minutes(local, airport):\n"
        "    h, m = map(int, local.split(':'))\n"
        "    return h * 60 + m - 60 * get_utc_offset(airport)\n"
        "answer = utc_minutes(f['arrives_local'], f['to']) - utc_minutes(f['departs_local'], f['from'])",
    ),
    ToolTask(
        "temperature_spread_f", "conversion",
        "Of the cities Varnholm, Quillby and Maresk, what is the difference in degrees Fahrenheit between the "
        "warmest and the coldest right now?",
        (get_city_temperature_c, celsius_to_fahrenheit),
        NumberAnswer(45.0, abs_tol=0.05),
        "f = [celsius_to_fahrenheit(get_city_temperature_c(c)) for c in ['Varnholm', 'Quillby', 'Maresk']]\n"
        "answer = max(f) - min(f)",
    ),
    ToolTask(
        "department_mean_salary", "lookup",
        "What is the mean annual salary in the Research department, in dollars?",
        (list_employees, get_salary),
        NumberAnswer(69925, abs_tol=0.5),
        "salaries = [get_salary(name) for name in list_employees('Research')]\n"
        "answer = sum(salaries) / len(salaries)",
    ),
    ToolTask(
        "parcel_shipping_cost", "conversion",
        "Shipping is priced per kilogram, at the rate of the parcel's delivery zone. What does shipping parcel "
        "P-559 cost, in dollars rounded to cents?",
        (get_parcel, pounds_to_kg, get_rate_per_kg),
        NumberAnswer(38.78, abs_tol=0.01),
        "p = get_parcel('P-559')\nanswer = round(pounds_to_kg(p['weight_lb']) * get_rate_per_kg(p['zone']), 2)",
    ),
    ToolTask(
        "recipe_ounces", "conversion",
        "How many ounces of flour are needed to make the Hollow Ridge Loaf for 7 people? Round to 1 decimal.",
        (get_recipe, grams_to_ounces),
        NumberAnswer(15.4, abs_tol=0.05),
        "r = get_recipe('Hollow Ridge Loaf')\n"
        "answer = round(grams_to_ounces(r['ingredients_g']['flour'] * 7 / r['servings']), 1)",
    ),
    ToolTask(
        "portfolio_value", "lookup",
        "What are the shares in account ACC-77 worth in total, in US dollars?",
        (get_holdings, get_share_price),
        NumberAnswer(5283.10, abs_tol=0.01),
        "answer = round(sum(n * get_share_price(t) for t, n in get_holdings('ACC-77').items()), 2)",
    ),
    ToolTask(
        "route_miles", "conversion",
        "How long is the road trip Arlo -> Brennic -> Cask -> Dunmere, in miles? Round to 1 decimal.",
        (get_road_distance_km, km_to_miles),
        NumberAnswer(213.7, abs_tol=0.05),
        "towns = ['Arlo', 'Brennic', 'Cask', 'Dunmere']\n"
        "km = sum(get_road_distance_km(a, b) for a, b in zip(towns, towns[1:]))\n"
        "answer = round(km_to_miles(km), 1)",
    ),
    ToolTask(
        "densest_country", "lookup",
        "Which of Aldovia, Brisca and Corvane has the most inhabitants per square kilometre?",
        (get_population, get_area_km2),
        TextAnswer("Corvane"),
        "answer = max(['Aldovia', 'Brisca', 'Corvane'], key=lambda c: get_population(c) / get_area_km2(c))",
    ),
    ToolTask(
        "runner_speed_kmh", "conversion",
        "What was Ilse Marr's average speed in the harbour race, in km/h? Round to 2 decimals.",
        (get_race_result, duration_to_seconds),
        NumberAnswer(14.42, abs_tol=0.01),
        "r = get_race_result('Ilse Marr')\n"
        "answer = round(r['distance_m'] / 1000 / (duration_to_seconds(r['time']) / 3600), 2)",
    ),
    ToolTask(
        "trip_expenses_gbp", "conversion",
        "What did trip T-9 cost in total, in British pounds (GBP)? Round to 2 decimals.",
        (get_trip_expenses, get_exchange_rate),
        NumberAnswer(242.72, abs_tol=0.01),
        "answer = round(sum(e['amount'] * get_exchange_rate(e['currency'], 'GBP') for e in get_trip_expenses('T-9')), 2)",
    ),
    ToolTask(
        "invoice_gross", "lookup",
        "What is the gross total (net plus VAT) of invoice INV-2291? The VAT rate is the one of the customer's "
        "country. Round to cents.",
        (get_invoice, get_vat_rate_percent),
        NumberAnswer(614.38, abs_tol=0.01),
        "inv = get_invoice('INV-2291')\n"
        "net = sum(line['net_amount'] for line in inv['lines'])\n"
        "answer = round(net * (1 + get_vat_rate_percent(inv['customer_country']) / 100), 2)",
    ),
)  # fmt: skip
