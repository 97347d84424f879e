"""Money in frames: the money mode (float or exact decimal) and the one money rounding rule.

Standard library only. Every layer that decides how money looks or rounds imports it from here:
the loaders (``money=``), the Arrow pipeline (_arrow.py), the models' derived properties and
the metrics' ``quantize``.

Money modes (the ``money=`` argument of every loader):

- ``"float"`` (the default): every money column as ``float64`` (NaN for nulls), so every pandas,
  numpy, matplotlib and quantstats operation works. Each value is the nearest float of the exact
  decimal value (derived money is computed exactly first, then converted once).
- ``"decimal"``: exact ``pd.ArrowDtype(decimal128)`` columns: stored money as
  decimal128(20, 8) (NUMERIC(20,8)), derived money as decimal128(38, 8) (a product of two
  NUMERIC(20,8) values reaches ~1e24). For reconciliation, reports and metrics.

Rounding: money computed from money (a product, a quotient, a mean) is rounded once, half to
even, to ``MONEY_SCALE`` places. ``round_money`` is that rule for Python Decimals;
``ARROW_ROUND_MODE`` names it for pyarrow.compute.round; the SQL twin is the function
shivx_round_half_even (migration 0004).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum

__all__ = [
    "MoneyMode", "MONEY_MODES", "DEFAULT_MONEY_MODE", "parse_money_mode",
    "MONEY_PRECISION", "MONEY_SCALE", "DERIVED_MONEY_PRECISION", "QUANTUM", "EXACT_PRECISION",
    "ARROW_ROUND_MODE", "round_money",
]


class MoneyMode(StrEnum):
    """How loaders hand money to pandas."""

    FLOAT = "float"  # float64: every pandas/numpy operation works; nearest float of the exact value
    DECIMAL = "decimal"  # exact Arrow decimals: reconciliation, reports, metrics


MONEY_MODES: tuple[str, ...] = tuple(mode.value for mode in MoneyMode)
DEFAULT_MONEY_MODE = MoneyMode.FLOAT


def parse_money_mode(value: object) -> MoneyMode:
    """The money mode named by ``value`` ("float", "decimal" or a MoneyMode); ValueError otherwise."""
    if isinstance(value, MoneyMode):
        return value
    if isinstance(value, str) and value in MONEY_MODES:
        return MoneyMode(value)
    raise ValueError(f"money={value!r} is not valid: choose from {list(MONEY_MODES)}")


MONEY_PRECISION = 20  # NUMERIC(20,8): what the database stores
MONEY_SCALE = 8
DERIVED_MONEY_PRECISION = 38  # size x price < 1e24: 24 integer digits + 8 places fit decimal128's 38
QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)
EXACT_PRECISION = 60  # decimal digits for exact intermediate arithmetic on NUMERIC(20,8) values
ARROW_ROUND_MODE = "half_to_even"  # pyarrow.compute.round's name for ROUND_HALF_EVEN


def round_money(value: Decimal) -> Decimal:
    """``value`` rounded once, half to even, to 8 places (the sign of a zero is kept)."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        return value.quantize(QUANTUM, rounding=ROUND_HALF_EVEN)
