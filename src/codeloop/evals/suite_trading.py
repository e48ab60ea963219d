"""Trading and ledger tasks: fetch trades, prices, quotes and postings with tools, then do the accounting.

Every ticker, account, currency and amount here is invented, so a model cannot answer from memory.
"""

from __future__ import annotations

from typing import Any

from ..tools import tool
from .tasks import NumberAnswer, TextAnswer, ToolTask

__all__ = ["TRADING_TASKS", "TASKS"]


def _known(table: dict[Any, Any], key: Any, what: str) -> Any:
    # Tools answer an unknown key with the keys they know: a model that guessed a spelling can correct it.
    if key not in table:
        raise KeyError(f"unknown {what} {key!r}; known {what}s: {', '.join(sorted(map(str, table)))}")
    return table[key]


# --- fifo_realized_profit ---------------------------------------------------------------------------------------

_TRADES = {
    "T-4": [
        {"date": "2026-01-05", "side": "buy", "ticker": "NIMB", "shares": 40, "price": 12.50},
        {"date": "2026-01-19", "side": "buy", "ticker": "NIMB", "shares": 60, "price": 14.00},
        {"date": "2026-02-02", "side": "buy", "ticker": "QORA", "shares": 10, "price": 88.00},
        {"date": "2026-02-16", "side": "sell", "ticker": "NIMB", "shares": 70, "price": 15.25},
        {"date": "2026-03-02", "side": "sell", "ticker": "QORA", "shares": 10, "price": 80.00},
    ]
}  # fmt: skip
_BROKER_FEES = {"T-4": {"per_trade_usd": 1.75}}


@tool
def get_trades(account_id: str) -> list[dict[str, Any]]:
    """An account's trades in date order: dicts with "date", "side" ("buy"/"sell"), "ticker", "shares", "price".

    Args:
        account_id: The account's id, e.g. "T-1".
    """
    return [dict(trade) for trade in _known(_TRADES, account_id, "account")]


@tool
def get_fee_schedule(account_id: str) -> dict[str, float]:
    """The broker's fees for an account: a flat fee per trade, in dollars ("per_trade_usd").

    Args:
        account_id: The account's id.
    """
    return dict(_known(_BROKER_FEES, account_id, "account"))


# --- ledger_closing_balance -------------------------------------------------------------------------------------

_OPENING = {("L-22", 2026): 1250.00}
_POSTINGS = {
    ("L-22", "2026-01"): [{"kind": "credit", "amount": 830.00}, {"kind": "debit", "amount": 412.35}],
    ("L-22", "2026-02"): [{"kind": "debit", "amount": 96.10}, {"kind": "debit", "amount": 1100.00},
                          {"kind": "credit", "amount": 45.90}],
    ("L-22", "2026-03"): [{"kind": "credit", "amount": 2200.00}, {"kind": "debit", "amount": 733.33}],
    ("L-22", "2026-04"): [{"kind": "debit", "amount": 500.00}],
}  # fmt: skip


@tool
def get_opening_balance(account_id: str, year: int) -> float:
    """An account's balance on 1 January of a year, in dollars.

    Args:
        account_id: The ledger account's id, e.g. "L-1".
        year: The year, e.g. 2025.
    """
    return float(_known(_OPENING, (account_id, int(year)), "account/year"))


@tool
def get_postings(account_id: str, month: str) -> list[dict[str, Any]]:
    """An account's postings in one month: dicts with "kind" ("credit" adds, "debit" subtracts) and "amount".

    Args:
        account_id: The ledger account's id.
        month: The month as "YYYY-MM".
    """
    return [dict(p) for p in _POSTINGS.get((account_id, month), [])]


# --- rebalance_shares -------------------------------------------------------------------------------------------

_POSITIONS = {"RB-3": {"VELD": 120, "ARKO": 35, "SIMP": 300}}
_CLOSES = {
    ("VELD", "2026-04-30"): 41.20, ("ARKO", "2026-04-30"): 212.50, ("SIMP", "2026-04-30"): 8.40,
    ("VELD", "2026-04-29"): 40.00, ("ARKO", "2026-04-29"): 205.00, ("SIMP", "2026-04-29"): 8.10,
}  # fmt: skip
_TARGETS = {"RB-3": {"VELD": 35.0, "ARKO": 45.0, "SIMP": 20.0}}


@tool
def get_positions(account_id: str) -> dict[str, int]:
    """The shares an account holds, as {ticker: number of shares}.

    Args:
        account_id: The account's id, e.g. "RB-1".
    """
    return dict(_known(_POSITIONS, account_id, "account"))


@tool
def get_closing_price(ticker: str, date: str) -> float:
    """A share's closing price on a date, in dollars.

    Args:
        ticker: The share's ticker symbol.
        date: The trading day as "YYYY-MM-DD".
    """
    return float(_known(_CLOSES, (ticker, date), "ticker/date"))


@tool
def get_target_weights(account_id: str) -> dict[str, float]:
    """The target share of each ticker in an account's value, in percent, as {ticker: percent}.

    Args:
        account_id: The account's id.
    """
    return dict(_known(_TARGETS, account_id, "account"))


# --- best_gain_day ----------------------------------------------------------------------------------------------

_TICKERS = {"Orvelle Systems": "ORVL", "Banta Foods": "BNTF"}
_HISTORY = {
    "ORVL": [("2026-05-04", 20.00), ("2026-05-05", 21.10), ("2026-05-06", 20.40), ("2026-05-07", 21.90),
             ("2026-05-08", 22.30), ("2026-05-11", 21.00), ("2026-05-12", 22.40)],
    "BNTF": [("2026-05-04", 5.00), ("2026-05-05", 6.00)],
}  # fmt: skip


@tool
def find_ticker(company: str) -> str:
    """The ticker symbol a company's shares trade under.

    Args:
        company: The company's name.
    """
    return str(_known(_TICKERS, company, "company"))


@tool
def get_price_history(ticker: str) -> list[dict[str, Any]]:
    """A share's daily closing prices in date order, as dicts with "date" and "close".

    Args:
        ticker: The share's ticker symbol.
    """
    return [{"date": d, "close": c} for d, c in _known(_HISTORY, ticker, "ticker")]


# --- currency_round_trip ----------------------------------------------------------------------------------------

_QUOTES = {("ZAL", "MRK"): 3.125, ("MRK", "PTA"): 0.412, ("PTA", "ZAL"): 0.7818, ("MRK", "ZAL"): 0.3196}
_FEE_PERCENT = 0.2


@tool
def get_quote(sell: str, buy: str) -> float:
    """How many units of currency `buy` one unit of currency `sell` buys at the exchange desk (before its fee).

    Args:
        sell: The currency code given, e.g. "ZAL".
        buy: The currency code received.
    """
    return float(_known(_QUOTES, (sell.upper(), buy.upper()), "currency pair"))


@tool
def get_desk_fee_percent() -> float:
    """The exchange desk's fee, in percent of the amount received, taken on every conversion."""
    return _FEE_PERCENT


# --- net_dividend_income ----------------------------------------------------------------------------------------

_DIVIDEND_HOLDINGS = {"D-9": {"PLMR": 200, "KASO": 160, "WENT": 80}}
_DIVIDENDS = {
    ("PLMR", 2025): [0.42, 0.42, 0.45, 0.45], ("KASO", 2025): [1.10, 1.35], ("WENT", 2025): [0.00],
    ("PLMR", 2024): [0.40, 0.40],
}  # fmt: skip
_COUNTRIES = {"PLMR": "domestic", "KASO": "foreign", "WENT": "foreign"}
_WITHHOLDING_PERCENT = 15.0


@tool
def get_dividend_holdings(account_id: str) -> dict[str, int]:
    """The shares an account held all year, as {ticker: number of shares}.

    Args:
        account_id: The account's id, e.g. "D-1".
    """
    return dict(_known(_DIVIDEND_HOLDINGS, account_id, "account"))


@tool
def get_dividends_per_share(ticker: str, year: int) -> list[float]:
    """Every dividend a share paid in a year, in dollars per share.

    Args:
        ticker: The share's ticker symbol.
        year: The year.
    """
    return list(_known(_DIVIDENDS, (ticker, int(year)), "ticker/year"))


@tool
def get_company_domicile(ticker: str) -> dict[str, Any]:
    """Whether a company is "domestic" or "foreign" ("domicile"), and the withholding tax in percent taken from
    dividends of foreign companies ("foreign_withholding_percent").

    Args:
        ticker: The share's ticker symbol.
    """
    return {
        "domicile": _known(_COUNTRIES, ticker, "ticker"),
        "foreign_withholding_percent": _WITHHOLDING_PERCENT,
    }


TRADING_TASKS: tuple[ToolTask, ...] = (
    ToolTask(
        "fifo_realized_profit", "trading",
        "Account T-4's sales are matched to its earliest purchases first (FIFO). What is its realized profit "
        "in dollars over all its sales, after the broker's flat fee on every trade (buys included)?",
        (get_trades, get_fee_schedule),
        NumberAnswer(58.75, abs_tol=0.01),
        "trades = get_trades('T-4')\n"
        "lots, profit = {}, 0.0\n"
        "for t in trades:\n"
        "    queue = lots.setdefault(t['ticker'], [])\n"
        "    if t['side'] == 'buy':\n"
        "        queue.append([t['shares'], t['price']])\n"
        "        continue\n"
        "    left = t['shares']\n"
        "    while left:\n"
        "        take = min(left, queue[0][0])\n"
        "        profit += take * (t['price'] - queue[0][1])\n"
        "        queue[0][0] -= take\n"
        "        left -= take\n"
        "        if not queue[0][0]:\n"
        "            queue.pop(0)\n"
        "answer = round(profit - len(trades) * get_fee_schedule('T-4')['per_trade_usd'], 2)",
    ),
    ToolTask(
        "ledger_closing_balance", "trading",
        "What is the balance of ledger account L-22 at the end of March 2026, in dollars?",
        (get_opening_balance, get_postings),
        NumberAnswer(1984.12, abs_tol=0.01),
        "balance = get_opening_balance('L-22', 2026)\n"
        "for month in ['2026-01', '2026-02', '2026-03']:\n"
        "    for p in get_postings('L-22', month):\n"
        "        balance += p['amount'] if p['kind'] == 'credit' else -p['amount']\n"
        "answer = round(balance, 2)",
    ),
    ToolTask(
        "rebalance_shares", "trading",
        "At the closing prices of 2026-04-30, how many ARKO shares must account RB-3 buy (a positive number) or "
        "sell (a negative number) for ARKO to reach its target weight? Round to the nearest whole share.",
        (get_positions, get_closing_price, get_target_weights),
        NumberAnswer(-3, abs_tol=0.1),
        "pos = get_positions('RB-3')\n"
        "price = {t: get_closing_price(t, '2026-04-30') for t in pos}\n"
        "total = sum(n * price[t] for t, n in pos.items())\n"
        "target = get_target_weights('RB-3')['ARKO'] / 100 * total\n"
        "answer = round(target / price['ARKO'] - pos['ARKO'])",
    ),
    ToolTask(
        "best_gain_day", "trading",
        "On which date did Orvelle Systems' share price have its largest one-day percentage gain (close over "
        "the previous close)? Answer with the date as YYYY-MM-DD.",
        (find_ticker, get_price_history),
        TextAnswer("2026-05-07"),
        "h = get_price_history(find_ticker('Orvelle Systems'))\n"
        "answer = max(h[1:], key=lambda d: d['close'] / h[h.index(d) - 1]['close'])['date']",
    ),
    ToolTask(
        "currency_round_trip", "trading",
        "At the exchange desk, I convert 1000 ZAL to MRK, the MRK to PTA, and the PTA back to ZAL, paying the "
        "desk's fee on each conversion. How many ZAL do I end with? Round to 2 decimals.",
        (get_quote, get_desk_fee_percent),
        NumberAnswer(1000.54, abs_tol=0.01),
        "keep = 1 - get_desk_fee_percent() / 100\n"
        "amount = 1000.0\n"
        "for sell, buy in [('ZAL', 'MRK'), ('MRK', 'PTA'), ('PTA', 'ZAL')]:\n"
        "    amount = amount * get_quote(sell, buy) * keep\n"
        "answer = round(amount, 2)",
    ),
    ToolTask(
        "net_dividend_income", "trading",
        "What dividend income did account D-9 receive in 2025, in dollars after the withholding tax on dividends "
        "of foreign companies? Round to cents.",
        (get_dividend_holdings, get_dividends_per_share, get_company_domicile),
        NumberAnswer(681.20, abs_tol=0.01),
        "total = 0.0\n"
        "for ticker, shares in get_dividend_holdings('D-9').items():\n"
        "    gross = shares * sum(get_dividends_per_share(ticker, 2025))\n"
        "    d = get_company_domicile(ticker)\n"
        "    if d['domicile'] == 'foreign':\n"
        "        gross *= 1 - d['foreign_withholding_percent'] / 100\n"
        "    total += gross\n"
        "answer = round(total, 2)",
    ),
)  # fmt: skip

TASKS = TRADING_TASKS
"""This module as a suite of its own: `codeloop eval codeloop.evals.suite_trading`."""
