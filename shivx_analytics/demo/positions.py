"""Positions and their orders: the tokens' price paths, positions per (user, token) one at a
time with their executed buy and sell orders, the failed, cancelled and pending orders, which
orders came through an API key, the web app's trading events, and the two tables.

The promises of the package docstring that tie orders to positions (exact amounts, one
position at a time, the FIFO ledger matching the positions) are kept here.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np

from shivx_analytics.demo.columns import _Codes, _Computed, _Ids, _Money, _Plain, _Table, _Times
from shivx_analytics.demo.state import _BuilderState
from shivx_analytics.demo.vocabulary import (
    CANCELLED,
    CLOSED,
    D_ORDER_CREATE,
    D_ORDER_EXECUTE,
    D_POSITION_CLOSE,
    DAY,
    EXECUTED,
    EXIT_REASONS,
    EXTRA_ORDER_SHARE,
    FAILED,
    FAILED_REASON_SHARES,
    FAILED_REASONS,
    HISTORY_DAYS,
    HOUR,
    LIMIT,
    LIQUIDATED,
    LIQUIDATED_SHARE,
    MARKET,
    MINUTE,
    NULL_TIME,
    OPEN,
    OPEN_POSITION_SHARE,
    ORDER_STATUSES,
    ORDER_TYPES,
    PENDING,
    POSITION_STATUSES,
    PRICE_BAND,
    PRICE_STEP,
    SECOND,
    STOP_LOSS,
    STRATEGIES,
    TAKE_PROFIT,
    TOKENS,
    TRADING,
    UNLABELLED_STRATEGY_SHARE,
    A,
    R,
    _json,
    _signatures,
    _uuid_hex,
)
from shivx_analytics.models import OrderAction, calculate_slippage, expected_out


class _Positions(_BuilderState):
    """Prices, positions, orders and the trading events."""

    def _prices(self) -> None:
        """A 5-minute log-price path per token: random walk with jumps for memes, softly bounded."""
        rng = self.rng
        n_steps = HISTORY_DAYS * DAY // PRICE_STEP + 1
        start = np.array([t[1] for t in TOKENS])
        vol = np.array([t[2] for t in TOKENS])
        meme = np.array([t[4] for t in TOKENS])
        step_sigma = vol * math.sqrt(PRICE_STEP / (365 * DAY))
        shocks = rng.standard_normal((len(TOKENS), n_steps - 1)) * step_sigma[:, None]
        jump_rate = np.where(meme, 0.5, 0.03) * PRICE_STEP / DAY  # jumps per step
        jump_size = np.where(meme, 0.07, 0.04)
        jumps = (rng.random(shocks.shape) < jump_rate[:, None]) * rng.normal(0.0, 1.0, shocks.shape)
        jumps *= jump_size[:, None]
        walk = np.concatenate([np.zeros((len(TOKENS), 1)), np.cumsum(shocks + jumps, axis=1)], axis=1)
        self.log_price = np.log(start)[:, None] + PRICE_BAND * np.tanh(walk / PRICE_BAND)
        # decimals: about 7 significant digits, so that size decimals + price decimals = 8
        self.price_decimals = np.clip(6 - np.floor(np.log10(start)), 0, 8).astype(np.int64)
        self.size_decimals = 8 - self.price_decimals
        self.token_popularity = np.array([t[3] for t in TOKENS])
        self.token_meme = meme

    def _price_ints(self, token: np.ndarray, micros: np.ndarray, factor: np.ndarray | float = 1.0) -> np.ndarray:
        """Market price x factor at those times, as integers in units of 10**-price_decimals (>= 1)."""
        step = np.clip((micros - self.t0) // PRICE_STEP, 0, self.log_price.shape[1] - 1)
        price = np.exp(self.log_price[token, step]) * factor * 10.0 ** self.price_decimals[token]
        return np.maximum(1, np.rint(price)).astype(np.int64)

    def _positions(self) -> None:
        """Positions per (user, token), one at a time, with their buy and (when closed) sell orders."""
        rng = self.rng
        n_tokens = len(TOKENS)
        users: list[int] = []
        tokens: list[int] = []
        popularity = self.token_popularity / self.token_popularity.sum()
        for u in range(self.n_users):
            k = int(rng.integers(2, 11))
            tokens.extend(rng.choice(n_tokens, size=k, replace=False, p=popularity).tolist())
            users.extend([u] * k)
        pair_user, pair_token = np.array(users), np.array(tokens)
        weight = self.user_activity[pair_user] * self.token_popularity[pair_token]
        weight = weight * rng.lognormal(0, 0.5, pair_user.size)
        self.pair_user, self.pair_token, self.pair_weight = pair_user, pair_token, weight / weight.sum()

        n_positions = max(1, round(self.n_orders * (1 - EXTRA_ORDER_SHARE) / (2 - OPEN_POSITION_SHARE)))
        counts = rng.multinomial(n_positions, self.pair_weight)
        eligible = np.flatnonzero((counts > 0) & self.user_active[pair_user])
        n_open = min(eligible.size, round(OPEN_POSITION_SHARE * n_positions))
        open_pairs = rng.choice(eligible, size=n_open, replace=False)

        # opening times: sorted within each pair by cumulative gaps, spread over the user's window
        slots = counts + 1
        group = np.repeat(np.arange(pair_user.size), slots)
        gaps = rng.exponential(1.0, group.size) + 0.25
        cumulative = np.cumsum(gaps)
        first = np.cumsum(slots) - slots
        last = first + slots - 1
        within = cumulative - (cumulative[first] - gaps[first])[group]
        is_position = np.ones(group.size, bool)
        is_position[last] = False
        fraction = (within / within[last][group])[is_position]
        pos_pair = group[is_position]
        user = pair_user[pos_pair]
        token = pair_token[pos_pair]
        start, end = self.user_start[user], self.user_end[user]
        opened = start + (fraction * (end - start)).astype(np.int64)

        is_last = np.zeros(n_positions, bool)
        is_last[np.cumsum(counts)[counts > 0] - 1] = True
        next_open = np.empty(n_positions, np.int64)
        next_open[:-1] = opened[1:]
        next_open[is_last] = end[is_last]
        status = np.full(n_positions, CLOSED)
        status[is_last & np.isin(pos_pair, open_pairs)] = OPEN
        hold = rng.lognormal(math.log(6 * HOUR), 1.3, n_positions)
        closed = opened + np.minimum(hold, (next_open - opened) * rng.uniform(0.3, 0.95, n_positions)).astype(np.int64)
        closed = np.where(status == OPEN, NULL_TIME, np.maximum(closed, opened + SECOND))
        liquidated = (status == CLOSED) & (rng.random(n_positions) < LIQUIDATED_SHARE)
        status[liquidated] = LIQUIDATED
        is_closed = status != OPEN

        # strategy, size, entry
        pick = (rng.random(n_positions) * self.n_user_strategies[user]).astype(np.int64)
        strategy = self.user_strategies[user, pick]
        unlabelled = rng.random(n_positions) < UNLABELLED_STRATEGY_SHARE
        entry = self._price_ints(token, opened, np.exp(rng.normal(0, 0.0015, n_positions)))
        notional = np.clip(self.size_usd[user] * rng.lognormal(0, 0.9, n_positions), 10, 100_000)
        size_int = np.maximum(1, np.floor(notional * 1e8 / entry)).astype(np.int64)  # units of 10**-size_decimals

        # stop loss / take profit (in price units)
        protected = rng.random(n_positions) < np.array([s[2] for s in STRATEGIES])[strategy]
        stop = np.where(protected, np.maximum(1, np.floor(entry * (1 - rng.uniform(0.03, 0.15, n_positions)))), 0)
        take = np.where(protected, np.ceil(entry * (1 + rng.uniform(0.05, 0.4, n_positions))), 0)
        stop, take = stop.astype(np.int64), take.astype(np.int64)

        # exit (closed) or mark (open) price
        edge = np.array([s[1] for s in STRATEGIES])[strategy]
        exit_factor = np.exp(rng.normal(edge, 0.006, n_positions))
        exit_factor = np.where(liquidated, 1 - rng.uniform(0.02, 0.08, n_positions), exit_factor)
        exit_price = self._price_ints(token, np.where(is_closed, closed, self.as_of),
                                      np.where(is_closed, exit_factor, 1.0))
        exit_reason = np.where(liquidated, 3, 0)
        hit_stop = is_closed & ~liquidated & protected & (exit_price <= stop)
        exit_price = np.where(hit_stop, np.maximum(1, np.floor(stop * (1 - rng.uniform(0, 0.008, n_positions)))),
                              exit_price).astype(np.int64)
        hit_take = is_closed & ~liquidated & protected & ~hit_stop & (exit_price >= take)
        exit_price = np.where(hit_take, np.ceil(take * (1 + rng.uniform(0, 0.004, n_positions))),
                              exit_price).astype(np.int64)
        exit_reason = np.select([hit_stop, hit_take], [1, 2], exit_reason)

        # some open positions have already crossed their stop loss or take profit
        open_idx = np.flatnonzero(status == OPEN)
        if open_idx.size:
            n_cross = max(1, round(0.05 * open_idx.size))
            down = open_idx[exit_price[open_idx] < entry[open_idx]]
            up = open_idx[exit_price[open_idx] > entry[open_idx]]
            stop_crossed = rng.permutation(down if down.size else open_idx)[:n_cross]
            candidates = np.setdiff1d(up if up.size else open_idx, stop_crossed)
            take_crossed = rng.permutation(candidates)[:n_cross]
            mark = exit_price
            # crossed stop loss: stop at or above the mark; a take profit (if any) above the stop
            stop[stop_crossed] = np.ceil(mark[stop_crossed] * (1 + rng.uniform(0, 0.01, stop_crossed.size)))
            take[stop_crossed] = np.where(take[stop_crossed] > 0,
                                          np.maximum(take[stop_crossed], stop[stop_crossed] + 1), 0)
            # crossed take profit: take at or below the mark; a stop loss (if any) below the take
            below = 1 - rng.uniform(0, 0.01, take_crossed.size)
            take[take_crossed] = np.maximum(1, np.floor(mark[take_crossed] * below))
            too_high = stop[take_crossed] >= take[take_crossed]
            stop[take_crossed[too_high]] = take[take_crossed[too_high]] * 9 // 10  # 0 = no stop loss
            self.stop_crossed, self.take_crossed = stop_crossed, take_crossed

        to_money8 = 10 ** self.size_decimals[token]  # price units -> 10**-8 USD
        self.n_positions = n_positions
        self.pos_user, self.pos_token, self.pos_status = user, token, status
        self.pos_opened, self.pos_closed = opened, closed
        self.pos_strategy = np.where(unlabelled, -1, strategy)
        self.pos_size = size_int * 10 ** self.price_decimals[token]
        self.pos_entry = entry * to_money8
        self.pos_current = exit_price * to_money8
        self.pos_stop = stop * to_money8
        self.pos_take = take * to_money8
        self.pos_exit_reason = np.where(is_closed, exit_reason, -1)
        self.pos_ids = _uuid_hex(rng, n_positions)
        # the ledger: size x price is exact at 8 decimals, so pnl = sell amount_out - buy amount_in
        self.pos_cost = size_int * entry
        self.pos_proceeds = np.where(is_closed, size_int * exit_price, 0)

        # the executed orders: a buy per position, a sell per closed position
        closed_idx = np.flatnonzero(is_closed)
        self._position_orders(closed_idx, rng)

    def _position_orders(self, closed_idx: np.ndarray, rng: np.random.Generator) -> None:
        n_buy = self.n_positions
        pos = np.concatenate([np.arange(n_buy), closed_idx])
        sell = np.arange(pos.size) >= n_buy
        token = self.pos_token[pos]
        meme = self.token_meme[token]
        tolerance = np.where(meme, rng.choice([100, 300], size=pos.size),
                             rng.choice([50, 100, 300], size=pos.size, p=[0.6, 0.3, 0.1]))
        exit_reason = self.pos_exit_reason[pos]
        order_type = np.where(rng.random(pos.size) < np.where(sell, 0.15, 0.25), LIMIT, MARKET)
        order_type = np.select([sell & (exit_reason == 1), sell & (exit_reason == 2), sell & (exit_reason == 3)],
                               [STOP_LOSS, TAKE_PROFIT, MARKET], order_type)

        # realized slippage in bps (positive = worse): fat-tailed for market fills, improvement for limits
        t = rng.standard_t(3, pos.size)
        t = np.where(t < 0, 0.3 * t, t)  # price improvement is rarer and smaller than slippage
        slippage = np.select(
            [order_type == MARKET, order_type == STOP_LOSS],
            [2 + 0.2 * tolerance * t, 6 + 0.3 * tolerance * t],
            -np.abs(rng.normal(0, 6, pos.size)))
        slippage = np.where(sell & (exit_reason == 3), 25 + 0.4 * tolerance * np.abs(t), slippage)
        slippage = np.clip(slippage, np.maximum(-0.3 * tolerance, -200), np.minimum(8 * tolerance, 2500))

        executed = np.where(sell, self.pos_closed[pos], self.pos_opened[pos])
        fill_price = np.where(sell, self.pos_current[pos], self.pos_entry[pos])  # 10**-8 USD per token
        # the quote: buy s = 1 - price/fill; sell s = 1 - fill/price
        quote = np.where(sell, fill_price / (1 - slippage / 1e4), fill_price * (1 - slippage / 1e4))
        quote = np.maximum(1, np.rint(quote)).astype(np.int64)
        size = self.pos_size[pos]
        cost = self.pos_cost[pos]
        proceeds = self.pos_proceeds[pos]

        latency = np.where(order_type == MARKET, rng.uniform(0.3, 4.0, pos.size) * SECOND,
                           np.minimum(rng.lognormal(math.log(20 * MINUTE), 1.0, pos.size), 45 * MINUTE))
        created = executed - latency.astype(np.int64)
        created = np.where(sell, np.maximum(created, self.pos_opened[pos] + 1), created)

        self.o_user = self.pos_user[pos]
        self.o_token = token
        self.o_action = sell.astype(np.int64)  # 0 buy, 1 sell
        self.o_type = order_type
        self.o_amount_in = np.where(sell, size, cost)
        self.o_amount_out = np.where(sell, proceeds, size)
        self.o_price = quote
        self.o_tolerance = tolerance
        self.o_status = np.full(pos.size, EXECUTED)
        self.o_position = pos
        self.o_created = created
        self.o_updated = executed
        self.o_executed = executed
        self.o_reason = np.full(pos.size, -1)
        self.o_strategy = self.pos_strategy[pos]
        self.o_exit_reason = np.where(sell, exit_reason, -1)
        self.o_attempt = np.zeros(pos.size, np.int64)

    def _extra_orders(self) -> None:
        """Failed, cancelled and pending orders (no position; nothing on the ledger)."""
        rng = self.rng
        n_executed = self.o_user.size
        n = self.n_orders - n_executed
        n_pending = min(n, max(3, round(0.03 * n)))
        n_failed = round(0.57 * (n - n_pending))
        status = np.concatenate([np.full(n_pending, PENDING), np.full(n_failed, FAILED),
                                 np.full(n - n_pending - n_failed, CANCELLED)])
        active_pairs = self.user_active[self.pair_user]
        weight = np.where(active_pairs, self.pair_weight, 0.0)
        pair = np.where(status == PENDING, rng.choice(self.pair_user.size, size=n, p=weight / weight.sum()),
                        rng.choice(self.pair_user.size, size=n, p=self.pair_weight))
        user, token = self.pair_user[pair], self.pair_token[pair]
        start, end = self.user_start[user], self.user_end[user]

        order_type = np.select(
            [status == FAILED, status == CANCELLED],
            [np.where(rng.random(n) < 0.85, MARKET, LIMIT),
             rng.choice([LIMIT, STOP_LOSS, TAKE_PROFIT], size=n, p=[0.8, 0.1, 0.1])],
            np.where(rng.random(n) < 0.7, LIMIT, MARKET))
        created = start + (rng.random(n) * (end - start)).astype(np.int64)
        recent = np.where(order_type == MARKET, 10 * MINUTE, 2 * DAY)
        created = np.where(status == PENDING, np.maximum(start, self.as_of - (rng.random(n) * recent).astype(np.int64)),
                           created)
        updated = np.select(
            [status == FAILED, status == CANCELLED],
            [created + (rng.uniform(0.5, 90, n) * SECOND).astype(np.int64),
             created + rng.lognormal(math.log(30 * MINUTE), 1.2, n).astype(np.int64)],
            created)
        updated = np.minimum(updated, end - 1)
        created = np.minimum(created, updated)

        sell = rng.random(n) < 0.2
        factor = np.select([(order_type == LIMIT) & ~sell, (order_type == LIMIT) & sell,
                            order_type == STOP_LOSS, order_type == TAKE_PROFIT],
                           [1 - rng.uniform(0.01, 0.06, n), 1 + rng.uniform(0.01, 0.08, n),
                            1 - rng.uniform(0.03, 0.12, n), 1 + rng.uniform(0.05, 0.3, n)],
                           np.exp(rng.normal(0, 0.002, n)))
        price = self._price_ints(token, created, factor)
        notional = np.clip(self.size_usd[user] * rng.lognormal(0, 0.7, n), 10, 100_000)
        tokens_int = np.maximum(1, np.floor(notional * 1e8 / price)).astype(np.int64)
        amount_in = np.where(sell, tokens_int * 10 ** self.price_decimals[token],
                             np.rint(notional * 100).astype(np.int64) * 1_000_000)
        meme = self.token_meme[token]
        tolerance = np.where(meme, rng.choice([100, 300], size=n),
                             rng.choice([50, 100, 300], size=n, p=[0.6, 0.3, 0.1]))
        reason = rng.choice(len(FAILED_REASONS), size=n, p=FAILED_REASON_SHARES)
        reason = np.where(sell | (reason != 4), reason, 0)  # token balance only fails sells

        self.o_user = np.concatenate([self.o_user, user])
        self.o_token = np.concatenate([self.o_token, token])
        self.o_action = np.concatenate([self.o_action, sell.astype(np.int64)])
        self.o_type = np.concatenate([self.o_type, order_type])
        self.o_amount_in = np.concatenate([self.o_amount_in, amount_in])
        self.o_amount_out = np.concatenate([self.o_amount_out, np.zeros(n, np.int64)])
        self.o_price = np.concatenate([self.o_price, price * 10 ** self.size_decimals[token]])
        self.o_tolerance = np.concatenate([self.o_tolerance, tolerance])
        self.o_status = np.concatenate([self.o_status, status])
        self.o_position = np.concatenate([self.o_position, np.full(n, -1)])
        self.o_created = np.concatenate([self.o_created, created])
        self.o_updated = np.concatenate([self.o_updated, updated])
        self.o_executed = np.concatenate([self.o_executed, np.full(n, NULL_TIME)])
        self.o_reason = np.concatenate([self.o_reason, np.where(status == FAILED, reason, -1)])
        strategy = self.user_strategies[user, (rng.random(n) * self.n_user_strategies[user]).astype(np.int64)]
        self.o_strategy = np.concatenate([self.o_strategy, strategy])
        self.o_exit_reason = np.concatenate([self.o_exit_reason, np.full(n, -1)])
        self.o_attempt = np.concatenate([self.o_attempt, np.where(status == FAILED, rng.integers(1, 4, n), 0)])
        self.n_orders_total = self.o_user.size
        self.order_ids = _uuid_hex(rng, self.n_orders_total)
        executed = self.o_status == EXECUTED
        self.o_signature = np.full(self.n_orders_total, -1)
        self.o_signature[executed] = np.arange(int(executed.sum()))
        self.signatures = _signatures(rng, int(executed.sum()))

    def _order_sources(self) -> None:
        """Which orders came through an API key (and which key), and which from the web app."""
        rng = self.rng
        n = self.n_orders_total
        slots = int(np.bincount(self.key_owner, minlength=self.n_users).max()) if self.n_keys else 0
        key_table = np.full((self.n_users, max(slots, 1)), -1)
        fill = np.zeros(self.n_users, np.int64)
        for k, owner in enumerate(self.key_owner.tolist()):
            key_table[owner, fill[owner]] = k
            fill[owner] += 1
        candidates = key_table[self.o_user]  # (orders, slots)
        safe = np.maximum(candidates, 0)
        valid = (candidates >= 0) & self.key_trade[safe] & ~self.key_never_used[safe] & \
            (self.key_created[safe] <= self.o_created[:, None]) & (self.o_created[:, None] < self.key_usage_end[safe])
        score = rng.random(valid.shape) * valid
        choice = candidates[np.arange(n), np.argmax(score, axis=1)]
        wants_api = rng.random(n) < self.api_share[self.o_user]
        self.o_key = np.where(wants_api & valid.any(axis=1), choice, -1)

    def _trading_events(self) -> None:
        """Orders placed in the web app: order_create, order_execute (executed or failed), position_close."""
        web = self.o_key < 0
        user_ip = np.array([ips[0] for ips in self.user_ips])
        idx = np.flatnonzero(web)
        self._add(self.o_created[idx], TRADING, A["order_create"], R["/api/v1/orders"], self.o_user[idx],
                  user_ip[self.o_user[idx]], True, D_ORDER_CREATE, idx)
        done = np.flatnonzero(web & np.isin(self.o_status, [EXECUTED, FAILED]))
        self._add(np.where(self.o_status[done] == EXECUTED, self.o_executed[done], self.o_updated[done]), TRADING,
                  A["order_execute"], R["/api/v1/orders"], self.o_user[done], user_ip[self.o_user[done]],
                  self.o_status[done] == EXECUTED, D_ORDER_EXECUTE, done)
        closes = np.flatnonzero(web & (self.o_action == 1) & (self.o_status == EXECUTED))
        position = self.o_position[closes]
        self._add(self.pos_closed[position], TRADING, A["position_close"], R["/api/v1/positions"],
                  self.o_user[closes], user_ip[self.o_user[closes]], True, D_POSITION_CLOSE, position)

    def _positions_table(self) -> _Table:
        order = np.argsort(self.pos_opened, kind="stable")
        buy_source = np.full(self.n_positions, -1)
        is_buy = self.o_position >= 0
        buy_source[self.o_position[is_buy & (self.o_action == 0)]] = self.o_key[is_buy & (self.o_action == 0)]
        # extra_data: where the position was opened from, and why it was closed
        combos = [_json({"source": source}) for source in ("api", "web")] + [
            _json({"exit_reason": reason, "source": source}) for reason in EXIT_REASONS for source in ("api", "web")]
        web = (buy_source < 0).astype(np.int64)
        extra = np.where(self.pos_exit_reason < 0, web, 2 + 2 * self.pos_exit_reason + web)
        marked = np.maximum(self.pos_opened, self.as_of - 5 * MINUTE)  # open positions: the last mark
        updated = np.where(self.pos_status == OPEN, marked, self.pos_closed)
        return _Table("positions", self.n_positions, {
            "position_id": _Ids(self.pos_ids[order]),
            "user_id": _Ids(self.user_ids, self.pos_user[order]),
            "token": _Codes(self.pos_token[order], [t[0] for t in TOKENS]),
            "size": _Money(self.pos_size[order]),
            "entry_price": _Money(self.pos_entry[order]),
            "current_price": _Money(self.pos_current[order]),
            "stop_loss": _Money(self.pos_stop[order]),
            "take_profit": _Money(self.pos_take[order]),
            "strategy": _Codes(self.pos_strategy[order], [s[0] for s in STRATEGIES]),
            "extra_data": _Codes(extra[order], combos),
            "status": _Codes(self.pos_status[order], POSITION_STATUSES),
            "opened_at": _Times(self.pos_opened[order]),
            "closed_at": _Times(self.pos_closed[order]),
            "created_at": _Times(self.pos_opened[order]),
            "updated_at": _Times(updated[order]),
        })

    def _orders_table(self) -> _Table:
        order = np.argsort(self.o_created, kind="stable")
        n_strategies = len(STRATEGIES) + 1  # + unlabelled
        combos: list[str] = []
        for source in ("api", "web"):
            for strategy_code in range(n_strategies):
                for reason_code in range(len(EXIT_REASONS) + 1):
                    for attempt in range(4):
                        document: dict[str, str | int] = {"source": source}
                        if strategy_code < len(STRATEGIES):
                            document["strategy"] = STRATEGIES[strategy_code][0]
                        if reason_code < len(EXIT_REASONS):
                            document["exit_reason"] = EXIT_REASONS[reason_code]
                        if attempt:
                            document["attempt"] = attempt
                        combos.append(_json(document))
        web = (self.o_key < 0).astype(np.int64)
        strategy = np.where(self.o_strategy < 0, len(STRATEGIES), self.o_strategy)
        reason = np.where(self.o_exit_reason < 0, len(EXIT_REASONS), self.o_exit_reason)
        extra = ((web * n_strategies + strategy) * (len(EXIT_REASONS) + 1) + reason) * 4 + self.o_attempt
        signature = self.o_signature[order]
        signatures = self.signatures

        def signature_values(start: int, stop: int) -> list:
            chunk = signature[start:stop]
            out = signatures[np.maximum(chunk, 0)].astype("U88").astype(object)
            out[chunk < 0] = None
            return out.tolist()

        action, amount_in, price, amount_out = (self.o_action[order], self.o_amount_in[order], self.o_price[order],
                                                self.o_amount_out[order])

        def slippage_values(start: int, stop: int) -> list:
            return _slippage_text(action[start:stop], amount_in[start:stop], price[start:stop], amount_out[start:stop])

        return _Table("orders", self.n_orders_total, {
            "order_id": _Ids(self.order_ids[order]),
            "user_id": _Ids(self.user_ids, self.o_user[order]),
            "position_id": _Ids(self.pos_ids, self.o_position[order]),
            "token": _Codes(self.o_token[order], [t[0] for t in TOKENS]),
            "action": _Codes(self.o_action[order], ("buy", "sell")),
            "order_type": _Codes(self.o_type[order], ORDER_TYPES),
            "amount_in": _Money(amount_in),
            "price": _Money(price),
            "slippage_bps": _Plain(self.o_tolerance[order]),
            "extra_data": _Codes(extra[order], combos),
            "amount_out": _Money(amount_out),
            "slippage_actual": _Computed(slippage_values),
            "status": _Codes(self.o_status[order], ORDER_STATUSES),
            "transaction_signature": _Computed(signature_values),
            "executed_at": _Times(self.o_executed[order]),
            "failed_reason": _Codes(self.o_reason[order], FAILED_REASONS),
            "created_at": _Times(self.o_created[order]),
            "updated_at": _Times(self.o_updated[order]),
        })


def _slippage_text(action: np.ndarray, amount_in: np.ndarray, price: np.ndarray, amount_out: np.ndarray) -> list:
    """slippage_actual of executed orders (amount_out set) via the order model's own functions."""
    out: list[str | None] = []
    buy, sell = OrderAction.BUY, OrderAction.SELL
    for a, i, p, o in zip(action.tolist(), amount_in.tolist(), price.tolist(), amount_out.tolist()):
        if not o:
            out.append(None)
            continue
        expected = expected_out(sell if a else buy, Decimal(i).scaleb(-8), Decimal(p).scaleb(-8))
        out.append(f"{calculate_slippage(expected, Decimal(o).scaleb(-8)):f}")
    return out
