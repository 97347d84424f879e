"""The FIFO ledger over executed orders: realized P&L per user and token, lot by lot, and its
reconciliation with the positions' realized P&L (docs/conventions.md, "FIFO reconciliation").

Separate from pnl.py because it reads orders, not positions, and keeps its own book per user and
token; the P&L report uses both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

import pandas as pd

from ._common import (
    MONEY_TOTAL,
    PRECISION,
    ZERO,
    counts,
    equals,
    money_series,
    money_sum,
    money_sum_by,
    optional_timestamp,
    quantize,
    require_columns,
    to_decimal,
)
from .pnl import realized_positions

_ORDER_COLUMNS = ("order_id", "user_id", "token", "action", "status", "amount_in", "amount_out",
                  "executed_at")


@dataclass(frozen=True, eq=False)
class FifoResult:
    """FIFO realized P&L from executed orders.

    realized: one row per (user_id, token): realized_pnl, buys, sells, open_tokens, open_cost.
    problems: one row per order the ledger could not use fully: problem "oversold" (a sell larger
    than the holdings; only the covered part is realized, the rest is in tokens_unmatched /
    proceeds_unmatched), "missing_execution_data" or "non_positive_amount" (order skipped).
    """

    realized: pd.DataFrame
    problems: pd.DataFrame


# FIFO ledger -------------------------------------------------------------------------------


def fifo_realized_pnl(orders: pd.DataFrame, *, since: object = None) -> FifoResult:
    """Realized P&L per (user_id, token) from executed orders, FIFO (docs/conventions.md).

    Executed orders in executed_at order (order_id breaks ties). A buy adds a lot (tokens =
    amount_out, cost = amount_in); a sell consumes lots oldest first and realizes amount_out -
    cost of the tokens consumed, pro rata within a lot. A sell larger than the holdings realizes
    only its covered part (proceeds pro rata) and is listed in `problems`, never hidden.

    since: realized_pnl counts only the sells executed at or after since (lots bought before
    still feed FIFO) and `problems` only the orders executed then; buys, sells and the open lots
    are the whole ledger's. The window's P&L is summed once and rounded once, not taken as the
    difference of two rounded ledgers (which can be 1e-8 off).
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    since = optional_timestamp(since, "since")
    executed = orders[equals(orders["status"], "executed")]
    executed = executed.sort_values(["executed_at", "order_id"], kind="mergesort", na_position="last")
    books: dict[tuple[str, str], _Book] = {}
    problems: list[dict[str, object]] = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        rows: Iterable[Any] = executed[list(_ORDER_COLUMNS)].itertuples(index=False)
        for row in rows:
            book = books.setdefault((row.user_id, row.token), _Book())
            counted = since is None or (not pd.isna(row.executed_at) and row.executed_at >= since)
            problem = book.apply(row, counted)
            if problem is not None and counted:
                problems.append(problem)
    keys = sorted(books)
    realized = pd.DataFrame({
        "user_id": pd.Series([k[0] for k in keys], dtype="string"),
        "token": pd.Series([k[1] for k in keys], dtype="string"),
    })
    realized["realized_pnl"] = money_series([books[k].realized for k in keys], realized.index, "")
    realized["buys"] = counts([books[k].buys for k in keys], realized.index, "buys")
    realized["sells"] = counts([books[k].sells for k in keys], realized.index, "sells")
    realized["open_tokens"] = money_series([books[k].open_tokens() for k in keys], realized.index, "")
    realized["open_cost"] = money_series([books[k].open_cost() for k in keys], realized.index, "")
    return FifoResult(realized=realized, problems=_problems_frame(problems))


def reconcile_fifo_with_positions(fifo: FifoResult, positions: pd.DataFrame, *,
                                  tolerance: object = 0) -> pd.DataFrame:
    """Per (user_id, token): fifo_pnl (ledger), position_pnl (sum of realized position pnl),
    difference = fifo_pnl - position_pnl, matches = |difference| <= tolerance (USD, default 0).

    A key present on one side only has 0 on the other. The two differ legitimately when fills
    carry slippage the position prices do not show; `matches` says where to look.
    """
    tolerance = to_decimal(tolerance, "tolerance")
    realized = realized_positions(positions)
    require_columns(realized, ("user_id", "token"), "positions")
    position_pnl = money_sum_by(realized, ["user_id", "token"], "pnl")
    ledger = {(r.user_id, r.token): r.realized_pnl
              for r in fifo.realized.itertuples(index=False)}
    booked = dict(zip(position_pnl.index, position_pnl.to_list()))
    keys = sorted(set(ledger) | set(booked))
    fifo_values = [quantize(ledger.get(k, ZERO)) for k in keys]
    position_values = [quantize(booked.get(k, ZERO)) for k in keys]
    differences = [money_sum([f, -p]) for f, p in zip(fifo_values, position_values)]
    index = pd.RangeIndex(len(keys))
    return pd.DataFrame({
        "user_id": pd.Series([k[0] for k in keys], dtype="string"),
        "token": pd.Series([k[1] for k in keys], dtype="string"),
        "fifo_pnl": money_series(fifo_values, index, "fifo_pnl"),
        "position_pnl": money_series(position_values, index, "position_pnl"),
        "difference": money_series(differences, index, "difference"),
        "matches": pd.Series([abs(d) <= tolerance for d in differences], dtype="bool"),
    })


class _Book:
    """FIFO lots of one (user_id, token); arithmetic runs in the caller's 60-digit context."""

    def __init__(self) -> None:
        self.lots: deque[list[Decimal]] = deque()  # [tokens, cost] per lot, oldest first
        self.realized = Decimal(0)
        self.buys = 0
        self.sells = 0

    def apply(self, row: Any, counted: bool = True) -> dict[str, object] | None:
        """Apply one executed order; a sell's P&L goes to `realized` only when `counted`."""
        if pd.isna(row.executed_at) or pd.isna(row.amount_out) or pd.isna(row.amount_in):
            return _problem(row, "missing_execution_data")
        amount_in, amount_out = to_decimal(row.amount_in), to_decimal(row.amount_out)
        if amount_in <= 0 or amount_out <= 0:
            return _problem(row, "non_positive_amount")
        if row.action == "buy":
            self.buys += 1
            self.lots.append([amount_out, amount_in])
            return None
        if row.action != "sell":
            return _problem(row, "unknown_action")
        self.sells += 1
        remaining, cost = amount_in, Decimal(0)
        while remaining > 0 and self.lots:
            lot = self.lots[0]
            take = min(remaining, lot[0])
            consumed = lot[1] if take == lot[0] else lot[1] * take / lot[0]
            lot[0] -= take
            lot[1] -= consumed
            remaining -= take
            cost += consumed
            if lot[0] == 0:
                self.lots.popleft()
        if remaining == 0:
            if counted:
                self.realized += amount_out - cost
            return None
        matched = amount_in - remaining
        proceeds = amount_out * matched / amount_in
        if counted:
            self.realized += proceeds - cost
        return _problem(row, "oversold", tokens_sold=amount_in, tokens_held=matched,
                        tokens_unmatched=remaining, proceeds_unmatched=amount_out - proceeds)

    def open_tokens(self) -> Decimal:
        return money_sum([lot[0] for lot in self.lots])

    def open_cost(self) -> Decimal:
        return money_sum([lot[1] for lot in self.lots])


_PROBLEM_AMOUNTS = ("tokens_sold", "tokens_held", "tokens_unmatched", "proceeds_unmatched")


def _problem(row: Any, problem: str, **amounts: Decimal) -> dict[str, object]:
    return {"order_id": row.order_id, "user_id": row.user_id, "token": row.token,
            "action": row.action, "executed_at": row.executed_at, "problem": problem, **amounts}


def _problems_frame(problems: list[dict[str, object]]) -> pd.DataFrame:
    index = pd.RangeIndex(len(problems))
    frame = pd.DataFrame({
        name: pd.Series([p[name] for p in problems], index=index, dtype="string")
        for name in ("order_id", "user_id", "token", "action")
    })
    frame["executed_at"] = pd.Series([p["executed_at"] for p in problems], index=index,
                                     dtype="datetime64[us, UTC]")
    frame["problem"] = pd.Series([p["problem"] for p in problems], index=index, dtype="string")
    for name in _PROBLEM_AMOUNTS:
        frame[name] = pd.Series([quantize(p[name]) if name in p else None for p in problems],
                                index=index, dtype=MONEY_TOTAL)
    return frame
