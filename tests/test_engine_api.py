"""Strategy API: decorator, parameters, user files, errors per set, state, fork, cache."""

from __future__ import annotations

import glob
import inspect
import os
import re
import sys
import textwrap

import numba
import numpy as np
import pytest
from test_engine_support import bar_arrays, day_ends, make_bars, run_engine

from incbt.engine import (
    BUILTINS,
    ENGINE_VERSION,
    ENGINE_WIDTH,
    Param,
    StrategyError,
    exec_params_from_dict,
    get_strategy,
    initial_state,
    kernel_path,
    load_strategies,
    params_from_dict,
    params_to_dict,
    run_segment,
    state_names,
    state_width,
    strategy,
    warmup_replay,
)
from incbt.engine import kernel as engine_kernel
from incbt.engine.layout import BARS, CASH, PENDING, POS, SIGNAL


@strategy(
    params={"side": Param(int, 1, min=-1, max=1, help="the side to hold")},
    state={"n": 0.0, "marker": 7.0},
)
def always(p, s, o, h, l, c, v, i):  # noqa: E741
    """Hold one side from the first bar on."""
    s[0] += 1.0
    return int(p[0])


@strategy(
    params={"bad_at": Param(int, -1, min=-1), "value": Param(float, 2.0)},
    state=("n",),
)
def misbehaving(p, s, o, h, l, c, v, i):  # noqa: E741
    """Returns `value` (99: NaN) as its signal at bar number `bad_at`, else alternates."""
    s[0] += 1.0
    if s[0] == p[0]:
        return np.nan if p[1] == 99.0 else p[1]
    return 1 if s[0] % 2 == 0 else -1


@strategy(params={"raise_at": Param(int, -1, min=-1)}, state=("n",))
def fragile(p, s, o, h, l, c, v, i):  # noqa: E741
    """Raises at bar number `raise_at`."""
    s[0] += 1.0
    if s[0] == p[0]:
        raise ValueError("fragile step gave up")
    return 1 if c[i] > o[i] else -1


@strategy(params={"n": Param(int, 3, min=1)}, state=("seen",), warmup=lambda p: p["n"])
def allocating(p, s, o, h, l, c, v, i):  # noqa: E741
    """Long above the mean of the last n closes, from a temporary array (needs NRT)."""
    n = int(p[0])
    s[0] += 1.0
    if s[0] <= n:
        return 0
    w = np.empty(n)
    for j in range(n):
        w[j] = c[i - 1 - j]
    return 1 if c[i] > w.mean() else -1


# ----------------------------------------------------------------------------- the decorator


def test_user_strategy_runs_per_semantics():
    bars = make_bars(1, 3)
    notional, fee, slip = 30000.0, 2.0, 3.0
    res = run_engine(
        "always",
        [{"side": 1}, {"side": -1}, {"side": 0}],
        bars,
        {"notional": notional, "fee_bps": fee, "slippage_bps": slip},
        strat=always,
    )
    assert res.ok
    o, c = bars["open"].to_numpy(), bars["close"].to_numpy()
    for k, side in enumerate((1, -1)):
        # ordered at bar 0's close, filled at bar 1's open, then held
        q = side * notional / c[0]
        px = o[1] * (1 + side * slip / 1e4)
        mine = res.fill_set == k
        assert res.fill_bar[mine].tolist() == [1]
        assert res.fill_qty[mine][0] == q and res.fill_price[mine][0] == px
        assert res.fill_fee[mine][0] == abs(q * px) * fee / 1e4
        cash = -(q * px + abs(q * px) * fee / 1e4)
        assert res.equity[k, -1] == cash + q * c[-1]
        assert res.state[k, POS] == q and res.state[k, SIGNAL] == side
    assert not np.any(res.fill_set == 2) and np.all(res.equity[2] == 0.0)
    # state slots: engine fields, then the strategy's own, with their initial values
    assert state_names(always) == (*state_names(always)[:ENGINE_WIDTH], "n", "marker")
    assert initial_state(always, 2)[:, ENGINE_WIDTH:].tolist() == [[0.0, 7.0]] * 2
    assert res.state[0, ENGINE_WIDTH:].tolist() == [float(len(bars)), 7.0]
    assert res.state[0, BARS] == len(bars)


def test_decorator_metadata():
    assert always.name == "always"
    assert always.doc.startswith("Hold one side")
    assert always.param_names == ("side",)
    assert always.defaults() == {"side": 1}
    assert always.warmup({"side": 0}) == 0
    assert re.fullmatch(r"[0-9a-f]{64}", always.code_version)
    assert "side (int, default 1, [-1, 1]): the side to hold" in always.describe()
    # what a strategy writer checks in `incbt strategies`: fields read, warm-up, version
    assert "\n  reads: open, high, low, close, volume; warm-up: 0 bar(s) at the defaults\n" \
        f"  code version: {always.code_version[:16]}" in always.describe()
    from incbt.engine import BUILTINS

    assert "reads: close; warm-up: 50 bar(s) at the defaults" in BUILTINS["sma_cross"].describe()
    assert always.py_step(np.array([1.0]), np.zeros(2), *([np.ones(3)] * 5), 0) == 1


def test_step_with_wrong_arity_is_rejected():
    with pytest.raises(StrategyError, match=r"8 arguments \(p, s, o, h, l, c, v, i\)"):

        @strategy(params={})
        def short(p, s, c, i):
            return 0


def test_bad_declarations_are_rejected():
    def step(p, s, o, h, l, c, v, i):  # noqa: E741
        return 0

    with pytest.raises(StrategyError, match="type must be int or float"):
        strategy(step, params={"x": Param(str, "a")})
    with pytest.raises(StrategyError, match="min 5 > max 1"):
        strategy(step, params={"x": Param(int, 3, min=5, max=1)})
    with pytest.raises(StrategyError, match=r"'x' = 0 is out of range"):
        strategy(step, params={"x": Param(int, 0, min=1)})
    with pytest.raises(StrategyError, match="tuple of names"):
        strategy(step, state="abc")
    with pytest.raises(StrategyError, match="fast must be smaller"):
        strategy(
            step,
            params={"fast": Param(int, 5), "slow": Param(int, 3)},
            check=lambda p: None if p["fast"] < p["slow"] else "fast must be smaller",
        )
    # found by QA 2026-12-06: a TypeError or AttributeError at the first call, or nothing
    for kw, match in (
        ({"check": "fast < slow"}, "check must be a function"),
        ({"check": lambda p: p["k"] > 0}, "its check rule returned True .* must return None"),
        ({"check": lambda p: 1 / (p["k"] - 2)}, r"its check rule raised ZeroDivisionError"),
        ({"check": lambda p: -0.5}, r"its check rule returned -0.5 .* must return None"),
        ({"depends": "helper"}, "depends must be a list of the functions"),
        ({"depends": [3]}, "depends holds 3, not a function"),
        ({"reads": "close"}, r"reads must be a tuple .* reads=\('close',\)"),
    ):
        with pytest.raises(StrategyError, match="strategy 'step': " + match):
            strategy(step, params={"k": Param(int, 2)}, **kw)
    with pytest.raises(StrategyError, match=r"'café' must be an ASCII identifier .*name=\.\.\."):
        strategy(step, name="café")  # it said "a Python identifier", which café is (QA)
    with pytest.raises(StrategyError, match=r"params holds \('n', <class 'int'>, 3\)"):
        strategy(step, params=[("n", int, 3)])
    # `bad and "why"` gives False for valid parameters: valid
    ok = strategy(step, params={"k": Param(int, 3)}, check=lambda p: p["k"] < 2 and "k < 2")
    with pytest.raises(StrategyError, match=r"invalid parameters \(k=1\): k < 2"):
        params_from_dict(ok, {"k": 1})
    with pytest.raises(StrategyError, match=r"check rule raised ZeroDivisionError: division "
                       r"by zero for the parameters \(k=2\)"):
        params_from_dict(strategy(step, params={"k": Param(int, 3)},
                                  check=lambda p: 1 / (p["k"] - 2) and None), {"k": 2})


# ----------------------------------------------------------------------------- parameters


def test_params_from_dict_fills_defaults_and_converts():
    sma = get_strategy("sma_cross")
    assert params_from_dict(sma, {"fast": 5}).tolist() == [5.0, 50.0]
    assert params_from_dict(sma, {"fast": "7", "slow": 9.0}).tolist() == [7.0, 9.0]
    boll = get_strategy("bollinger")
    row = params_from_dict(boll, {"k": 2})
    assert params_to_dict(boll, row) == {"window": 20, "k": 2.0}
    assert isinstance(params_to_dict(boll, row)["window"], int)


@pytest.mark.parametrize(
    ("name", "values", "pattern"),
    [
        ("sma_cross", {"fats": 5}, r"strategy 'sma_cross' has no parameter 'fats'; .*fast \(int"),
        ("sma_cross", {"fast": 2.5}, r"'sma_cross'.*'fast' = 2.5 is not an integer.*\[1, inf\]"),
        ("sma_cross", {"fast": "abc"}, r"'fast' = 'abc' is not an int"),
        ("sma_cross", {"fast": True}, r"'fast' = True has type bool"),
        ("sma_cross", {"fast": None}, r"'fast' = None has type NoneType"),
        ("sma_cross", {"fast": 0}, r"'fast' = 0 is out of range; valid range \[1, inf\]"),
        ("sma_cross", {"fast": 60}, r"invalid parameters \(fast=60, slow=50\).*less than slow"),
        ("ema_cross", {"fast": 30, "slow": 30}, r"'ema_cross'.*fast \(30\) must be less"),
        ("bollinger", {"k": 11}, r"'bollinger'.*'k' = 11 is out of range.*\[0.0, 10.0\]"),
        ("bollinger", {"k": float("nan")}, r"'k' = nan is not finite"),
        ("breakout", {"lookback": 2**60}, r"'lookback' = \d+ is too large"),
    ],
)
def test_invalid_parameters_have_clear_messages(name, values, pattern):
    with pytest.raises(StrategyError, match=pattern) as err:
        params_from_dict(get_strategy(name), values)
    assert isinstance(err.value, ValueError)


def test_exec_params():
    assert exec_params_from_dict({}).tolist() == [100000.0, 0.0, 0.0]
    assert exec_params_from_dict({"fee_bps": 1}).tolist() == [100000.0, 1.0, 0.0]
    with pytest.raises(StrategyError, match="'notional' = 0.0 must be > 0"):
        exec_params_from_dict({"notional": 0})
    # too large: its valid values said without the range [0.0, 1e+15], which holds 0 (QA
    # 2026-12-07: `--notional 1e16` was told "valid range [0.0, 1e+15]", 0 refused)
    with pytest.raises(StrategyError) as too_large:
        exec_params_from_dict({"notional": 1e16})
    assert str(too_large.value) == ("execution: parameter 'notional' = 1e+16 is out of range; "
                                    "valid: more than 0 and at most 1e+15")
    with pytest.raises(StrategyError, match=r"'fee_bps' = -1 is out of range; valid range \[0.0"):
        exec_params_from_dict({"fee_bps": -1})
    with pytest.raises(StrategyError, match="unknown execution parameter 'fees'"):
        exec_params_from_dict({"fees": 1})


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(StrategyError) as err:
        get_strategy("smacross")
    assert str(err.value) == (
        "unknown strategy 'smacross' (did you mean 'sma_cross'?); known strategies: "
        "bollinger, breakout, ema_cross, rsi, sma_cross"
    )
    assert get_strategy("always", {"always": always}) is always


def test_builtin_snapshots_are_small():
    for strat in BUILTINS.values():
        assert state_width(strat) * 8 <= 256
        assert strat.code_version != always.code_version
        assert initial_state(strat, 3).shape == (3, state_width(strat))


# ----------------------------------------------------------------------------- errors per set


def _utc(ns: int) -> str:
    import datetime

    t = datetime.datetime.fromtimestamp(int(ns) // 10**9, datetime.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def test_bad_signal_is_reported_for_its_set_only():
    bars = make_bars(2, 3)
    sets = [{"bad_at": -1}, {"bad_at": 5, "value": 2.0}, {"bad_at": 7, "value": 99.0}]
    res = run_engine("misbehaving", sets, bars, strat=misbehaving)
    good = run_engine("misbehaving", sets[:1], bars, strat=misbehaving)
    assert res.errors[0] is None
    assert res.errors[1] == (
        "strategy 'misbehaving', parameter set 1 ({'bad_at': 5, 'value': 2.0}): the step "
        f"returned signal 2.0 at bar 4 ({_utc(bars['ts'][4])} UTC); a signal must be -1, 0 or +1"
    )
    assert "returned signal nan at bar 6" in res.errors[2]
    assert not res.ok
    assert np.array_equal(res.equity[0], good.equity[0])
    assert np.isnan(res.equity[1:]).all() and np.isnan(res.snapshots[1:]).all()
    assert set(res.fill_set.tolist()) == {0}
    assert np.array_equal(res.state[1:], initial_state(misbehaving, 2))


def step_at(strat) -> str:
    """Where a user's step is, as its errors say (QA 2026-12-06: they named no file; then
    the line of its decorator, read as the error's): the line of its `def`."""
    lines, first = inspect.getsourcelines(strat.py_step)
    at = first + next(k for k, line in enumerate(lines) if line.lstrip().startswith("def "))
    assert at > strat.py_step.__code__.co_firstlineno  # decorated: not the decorator's line
    return f" (the step defined at test_engine_api.py, line {at})"


def test_a_raising_step_is_reported_for_its_set_only():
    bars = make_bars(3, 2)
    res = run_engine("fragile", [{"raise_at": -1}, {"raise_at": 3}, {}], bars, strat=fragile)
    assert res.errors[0] is None and res.errors[2] is None
    assert res.errors[1] == (
        "strategy 'fragile', parameter set 1 ({'raise_at': 3}): "
        "the step raised ValueError at bar 2 (2023-12-12 10:38:00 UTC): fragile step gave up"
        + step_at(fragile)
    )
    assert np.array_equal(res.equity[0], res.equity[2])
    assert np.isnan(res.pnl[1]).all()
    assert sorted(set(res.fill_set.tolist())) == [0, 2]
    # the bar it raised at is found whatever bar it is: either side of a day's end too
    n = len(bars)
    sets = [{"raise_at": r} for r in range(1, n + 1)]
    res = run_engine("fragile", sets, bars, strat=fragile)
    assert [e.split(" at bar ")[1].split(" ")[0] for e in res.errors] == [
        str(r - 1) for r in range(1, n + 1)
    ]
    assert np.all(np.diff(res.fill_set) >= 0)


def test_step_that_allocates_falls_back_to_reference_counting():
    bars = make_bars(4, 3)
    res = run_engine("allocating", [{"n": 3}, {"n": 5}], bars, strat=allocating)
    assert res.ok and res.fill_qty.size > 0


@strategy(
    params={"mode": Param(int, 0, min=0, max=4), "at": Param(int, 5, min=1)},
    state=("n", "seen"),
    warmup=8,
)
def peeking(p, s, o, h, l, c, v, i):  # noqa: E741
    """Reads a bar it may not at bar number `at` (mode 1: the next close, 2: index -1,
    3: the next high through a helper, 4: the next open); records what it can see."""
    mode = int(p[0])
    s[0] += 1.0
    s[1] = len(c) + 1000.0 * len(c[i : i + 5])  # the view's length, and a slice past i
    x = c[i]
    if s[0] == p[1]:
        if mode == 1:
            x = c[i + 1]
        elif mode == 2:
            x = c[-1]
        elif mode == 3:
            x = _read_at(h, i + 1)
        elif mode == 4:
            x = o[i + 1]
    return 1 if x > c[0] else -1


@numba.njit
def _read_at(a, j):
    return a[j]


def test_a_step_sees_only_the_bars_up_to_the_current_one():
    """Look-ahead is an error: o, h, l, c, v hold bars [0, i], checked, never wrapped."""
    bars = make_bars(6, 3, min_bars=10, max_bars=20)
    sets = [{"mode": 0}, {"mode": 1}, {"mode": 2}, {"mode": 3}, {"mode": 4}]
    res = run_engine("peeking", sets, bars, strat=peeking)
    assert res.errors[0] is None
    at = str(np.datetime64(int(bar_arrays(bars)[0][4]), "ns"))[:19].replace("T", " ")
    ahead = "a step read a bar after the current bar i (look-ahead): it may read bars j <= i only"
    below = (  # c[-1]: said apart from a look-ahead (QA 2026-12-06: one message for both)
        "a step read a bar before the first bar loaded (an index below 0: further back than "
        "the run has seen, or than the strategy's warmup): it may read bars i - warmup <= j "
        "<= i only, once its own counter says the run has seen them"
    )
    for k in range(1, 5):
        assert res.errors[k] == (
            f"strategy 'peeking', parameter set {k} ({{'mode': {k}, 'at': 5}}): the step raised "
            f"IndexError at bar 4 ({at} UTC): {below if k == 2 else ahead}" + step_at(peeking)
        )
        assert np.isnan(res.equity[k]).all() and not (res.fill_set == k).any()
    # len(c) is i + 1 and a slice reaching past i stops at i (one bar), at the last bar too
    n = len(bars)
    assert res.state[0, ENGINE_WIDTH + 1] == n + 1000.0
    # a fork's replay sees the same views
    p = np.stack([params_from_dict(peeking, s) for s in sets[:2]])
    ts, o, h, lo, c, v = bar_arrays(bars)
    with pytest.raises(StrategyError, match="while replaying the warm-up: a step read a bar"):
        warmup_replay(peeking, p, initial_state(peeking, 2), o, h, lo, c, v, n)
    ok = warmup_replay(peeking, p[:1], initial_state(peeking, 1), o, h, lo, c, v, n)
    assert ok[0, ENGINE_WIDTH + 1] == n + 1000.0


@strategy(
    params={"mode": Param(int, 0, min=0, max=4), "at": Param(int, 3, min=1)}, state=("n", "ema")
)
def slotted(p, s, o, h, l, c, v, i):  # noqa: E741
    """Uses a slot it did not declare at bar number `at` (mode 1: writes s[2], 2: reads
    s[-1], 3: reads p[2], 4: writes s[7] through a helper); an EMA in its second slot."""
    mode = int(p[0])
    s[0] += 1.0
    s[1] = c[i] if s[0] == 1.0 else 0.9 * s[1] + 0.1 * c[i]
    if s[0] == p[1]:
        if mode == 1:
            s[mode + 1] = 5.0
        elif mode == 2:
            s[1] = s[1 - mode]
        elif mode == 3:
            s[1] = p[mode - 1]
        elif mode == 4:
            _write_at(s, 7)
    return 1 if c[i] > s[1] else -1


@numba.njit
def _write_at(a, j):
    a[j] = 1.0


@strategy(params={}, state=("n", "ema"))
def constant_slot(p, s, o, h, l, c, v, i):  # noqa: E741
    s[2] = c[i]
    return 1


@strategy(params={}, state=())
def stateless(p, s, o, h, l, c, v, i):  # noqa: E741
    return 1 if s[0] > 0.0 else -1


@strategy(params={"n": Param(int, 2, min=1)}, state=("x",))
def rewrites_a_parameter(p, s, o, h, l, c, v, i):  # noqa: E741
    p[0] = 3.0
    return 1


def test_a_step_uses_only_the_slots_it_declares():
    """p and s are checked arrays of the declared lengths: a slot past them (or a negative
    index) fails the set with an IndexError, where it used to write over another variable
    of the kernel, silently and repeatably; a parameter cannot be written."""
    bars = make_bars(3, 2, min_bars=10, max_bars=20)
    sets = [{"mode": m} for m in range(5)]
    res = run_engine("slotted", sets, bars, strat=slotted)
    assert res.errors[0] is None and np.isfinite(res.equity[0]).all()
    for k, slot in [(1, "state"), (2, "state"), (3, "parameter"), (4, "state")]:
        letter, what = ("s", "state slots") if slot == "state" else ("p", "parameters")
        assert res.errors[k] is not None and res.errors[k].endswith(
            "the step raised IndexError at bar 2 (2023-12-12 10:38:00 UTC): a step used a "
            f"{slot} slot outside {letter}[0]..{letter}[1] (2 {what} declared): declare "
            "every slot it uses" + step_at(slotted)
        ), res.errors[k]
        assert np.isnan(res.equity[k]).all() and not (res.fill_set == k).any()
    # the sets that fail do not disturb the one that does not
    alone = run_engine("slotted", sets[:1], bars, strat=slotted)
    assert np.array_equal(alone.equity[0], res.equity[0])
    res = run_engine("constant_slot", [{}], bars, strat=constant_slot)
    assert res.errors[0].endswith(
        "IndexError at bar 0 (2023-12-12 09:45:00 UTC): a step used a state slot outside "
        "s[0]..s[1] (2 state slots declared): declare every slot it uses" + step_at(constant_slot)
    )
    res = run_engine("stateless", [{}], bars, strat=stateless)
    assert res.errors[0].endswith(
        "): a step used a state slot, and it declares none: declare every slot it uses"
        + step_at(stateless)
    )
    said = r"writes to p, its parameters, which are read-only.*\n.*test_engine_api.py\", line "
    with pytest.raises(StrategyError, match=said + r"\d+:\n.*\n    p\[0\] = 3.0"):
        run_engine("rewrites_a_parameter", [{}], bars, strat=rewrites_a_parameter)


def test_a_timestamp_step_cannot_read_a_later_timestamp():
    @strategy(params={}, state=("n",))
    def next_ts(p, s, o, h, l, c, v, i, t):  # noqa: E741
        s[0] += 1.0
        return 1 if t[i + 1] > t[i] else -1

    res = run_engine("next_ts", [{}], make_bars(2, 2), strat=next_ts)
    assert "the step raised IndexError at bar 0 (" in res.errors[0]
    assert "): a step read a bar after the current bar" in res.errors[0]


@strategy(params={}, state=("n",), warmup=2)
def short_memory(p, s, o, h, l, c, v, i):  # noqa: E741
    """Reads 5 bars back (once it has seen them) but declares a warm-up of 2."""
    s[0] += 1.0
    if s[0] <= 5:
        return 0
    return 1 if c[i] > c[i - 5] else -1


def test_a_step_reading_further_back_than_its_warmup_fails_when_resumed():
    """Run whole it sees every bar; resumed, only `warmup` bars are loaded before the
    segment, so its read lands before them: an error, not a wrapped (future) bar."""
    bars = make_bars(3, 3, min_bars=20, max_bars=30)
    ts = bar_arrays(bars)[0]
    full = run_engine("short_memory", [{}], bars, strat=short_memory)
    assert full.ok
    b = int(day_ends(ts)[0])
    part = run_engine(
        "short_memory",
        [{}],
        bars.iloc[b - 2 :].reset_index(drop=True),
        start=2,
        state=full.snapshots[:, 0, :].copy(),
        strat=short_memory,
    )
    assert "): a step read a bar before the first bar loaded (an index below 0" in part.errors[0]


def test_error_model_numpy_divides_without_testing_and_is_part_of_the_code_version():
    """A step declared error_model="numpy" divides as IEEE does (no ZeroDivisionError to
    report); the default reports the division for its set. The built-ins use "numpy"."""

    def divide(p, s, o, h, l, c, v, i):  # noqa: E741
        s[0] = c[i] / p[0]
        return 1 if s[0] > 0.0 else -1

    checked = strategy(params={"d": Param(float, 1.0)}, state=("q",), name="div")(divide)
    ieee = strategy(params={"d": Param(float, 1.0)}, state=("q",), name="div",
                    error_model="numpy")(divide)  # fmt: skip
    assert checked.error_model == "python" and ieee.error_model == "numpy"
    assert checked.code_version != ieee.code_version
    bars = make_bars(2, 2)
    res = run_engine("div", [{"d": 0.0}, {"d": 2.0}], bars, strat=checked)
    assert "the step raised ZeroDivisionError" in res.errors[0] and res.errors[1] is None
    res = run_engine("div", [{"d": 0.0}, {"d": 2.0}], bars, strat=ieee)
    assert res.ok and np.isinf(res.state[0, ENGINE_WIDTH])
    assert all(s.error_model == "numpy" for s in BUILTINS.values())
    with pytest.raises(StrategyError, match="error_model must be 'python' or 'numpy'"):
        strategy(params={}, error_model="c")(divide)


def plain_helper(x):
    return x


def test_step_that_does_not_compile_gives_a_strategy_error():
    @strategy(params={})
    def broken(p, s, o, h, l, c, v, i):  # noqa: E741
        return plain_helper(c[i])

    with pytest.raises(StrategyError, match="'broken': its step does not compile") as err:
        run_engine("broken", [{}], make_bars(1, 1), strat=broken)
    assert "Untyped global name 'plain_helper'" in str(err.value)
    assert "must be decorated with @numba.njit" in str(err.value)
    # Numba's pipeline lines and its excerpt of incbt's generated kernel are left out,
    # the user's file and line kept (16-38 lines pointing at the kernel: QA 2026-12-05)
    text = str(err.value)
    assert "During:" not in text and "incbt_kernels" not in text, text
    assert "test_engine_api.py" in text, text


def test_a_step_that_returns_no_number_on_some_path_is_said_so():
    @strategy(params={})
    def maybe(p, s, o, h, l, c, v, i):  # noqa: E741
        if c[i] > 1e9:
            return 1

    with pytest.raises(StrategyError, match="a path through the step returns nothing: a step "
                       "returns a number, -1, 0 or 1, on every path"):
        run_engine("maybe", [{}], make_bars(1, 1), strat=maybe)


def test_preload_loads_a_kernel_beside_the_caller_and_leaves_failures_to_the_real_call():
    """``incbt update`` starts loading its runs' kernels while it ingests. After the
    preload a strategy's kernel is resolved, with the signature real calls use (one);
    a step that does not compile fails quietly there and raises as usual when run."""

    @strategy(params={"k": Param(int, 2, min=1)}, state=("n",))
    def preloaded(p, s, o, h, l, c, v, i):  # noqa: E741
        s[0] += 1.0
        return 1 if s[0] > p[0] else 0

    @strategy(params={})
    def unloadable(p, s, o, h, l, c, v, i):  # noqa: E741
        return plain_helper(c[i])

    def key(strat):
        return (strat.code_version, strat.py_step.__module__, "run")

    assert key(preloaded) not in engine_kernel._RESOLVED
    row = params_from_dict(preloaded, {"k": 3})
    thread = engine_kernel.preload([(unloadable, np.zeros(0)), (preloaded, row)])
    assert thread is not None
    thread.join()
    assert key(preloaded) in engine_kernel._RESOLVED
    assert key(unloadable) not in engine_kernel._RESOLVED
    assert engine_kernel.preload([(preloaded, row)]) is None  # nothing left to load
    run_engine("preloaded", [{"k": 3}], make_bars(1, 2), strat=preloaded)
    assert len(engine_kernel.dispatcher(preloaded).signatures) == 1
    with pytest.raises(StrategyError, match="'unloadable': its step does not compile"):
        run_engine("unloadable", [{}], make_bars(1, 1), strat=unloadable)


# ----------------------------------------------------------------------------- run_segment input


def test_run_segment_checks_its_input():
    sma = get_strategy("sma_cross")
    bars = make_bars(1, 3)
    ts, o, h, lo, c, v = bar_arrays(bars)
    p = params_from_dict(sma, {"fast": 2, "slow": 6})[None]
    ex = exec_params_from_dict({})[None]
    de = day_ends(ts)
    st = initial_state(sma, 1)
    with pytest.raises(StrategyError, match=r"params must have shape \(n_sets, 2\)"):
        run_segment(sma, np.zeros((1, 3)), ex, ts, o, h, lo, c, v, 0, de, st)
    with pytest.raises(StrategyError, match=r"state must have shape \(1, 10\)"):
        run_segment(sma, p, ex, ts, o, h, lo, c, v, 0, de, st[:, :5])
    with pytest.raises(StrategyError, match="close has shape"):
        run_segment(sma, p, ex, ts, o, h, lo, c[:-1], v, 0, de, st)
    with pytest.raises(StrategyError, match="day_ends must be strictly increasing"):
        run_segment(sma, p, ex, ts, o, h, lo, c, v, 0, de[:-1], st)
    with pytest.raises(StrategyError, match=r"parameter set 0: .*'fast' = 2.5 is not an integer"):
        run_segment(sma, np.array([[2.5, 6.0]]), ex, ts, o, h, lo, c, v, 0, de, st)
    with pytest.raises(StrategyError, match=r"parameter set 1: .*fast \(6\) must be less"):
        run_segment(sma, np.array([[2.0, 6.0], [6.0, 6.0]]), np.tile(ex, (2, 1)),
                    ts, o, h, lo, c, v, 0, de, initial_state(sma, 2))  # fmt: skip
    with pytest.raises(StrategyError, match=r"exec_params of set 0 = \[0.0, 0.0, 0.0\]"):
        run_segment(sma, p, np.zeros((1, 3)), ts, o, h, lo, c, v, 0, de, st)
    # a resumed state whose windows need more history than was loaded
    full = run_segment(sma, p, ex, ts, o, h, lo, c, v, 0, de, st)
    b = int(de[0])
    with pytest.raises(StrategyError, match="needs 6 warm-up bars before start; got 2"):
        run_segment(sma, p, ex, ts[b - 2 :], o[b - 2 :], h[b - 2 :], lo[b - 2 :], c[b - 2 :],
                    v[b - 2 :], 2, de[1:] - b + 2, full.snapshots[:, 0])  # fmt: skip


def test_run_segment_refuses_day_ends_that_do_not_fit_the_bars_before_reading():
    """The kernel tests day_ends itself (strictly rising from start to the last bar);
    one that rose past the bars would have read beyond them."""
    sma = get_strategy("sma_cross")
    ts, o, h, lo, c, v = bar_arrays(make_bars(1, 3))
    n = len(ts)
    de = day_ends(ts)
    p = params_from_dict(sma, {"fast": 2, "slow": 6})
    ex = exec_params_from_dict({})
    for k in (0, 1, 2):  # in a batch or alone, and with no set at all
        pk, exk, stk = np.tile(p, (k, 1)), np.tile(ex, (k, 1)), initial_state(sma, k)
        for bad in (
            [de[0], n + 100, n],  # past the bars, then back
            [de[1], de[0], n],  # falling
            [de[0], de[0], n],  # an empty day
            [0, de[0], n],  # a day ending at start
            [de[0], de[1]],  # not up to the last bar
            [],
        ):
            with pytest.raises(StrategyError, match="day_ends must be strictly increasing"):
                run_segment(sma, pk, exk, ts, o, h, lo, c, v, 0, np.array(bad), stk)
        with pytest.raises(StrategyError, match="day_ends must be empty when there is no bar"):
            run_segment(sma, pk, exk, ts, o, h, lo, c, v, n, de[-1:], stk)
        # no bar after start: no day, nothing computed, the state as it was
        none = run_segment(sma, pk, exk, ts, o, h, lo, c, v, n, de[:0], stk)
        assert none.equity.shape == (k, 0) and np.array_equal(none.state, stk)


def test_run_segment_compiles_one_kernel_whatever_the_arrays_flags():
    """Writable and read-only bars, any day_ends, the same kernel signature: Numba would
    compile another kernel (seconds) for each array type."""
    sma = get_strategy("sma_cross")
    ts, o, h, lo, c, v = bar_arrays(make_bars(1, 3))
    de = day_ends(ts)
    p = params_from_dict(sma, {"fast": 2, "slow": 6})[None]
    ex = exec_params_from_dict({})[None]
    st = initial_state(sma, 1)
    first = run_segment(sma, p, ex, ts, o, h, lo, c, v, 0, de, st)
    ro = []
    for a in (o, h, lo, c, v, de):
        a = a.copy()
        a.flags.writeable = False
        ro.append(a)
    frozen = []
    for a in (p, ex, st):  # parameters and state as read-only as the bars
        a = a.copy()
        a.flags.writeable = False
        frozen.append(a)
    again = run_segment(sma, *frozen[:2], ts, *ro[:5], 0, ro[5], frozen[2])
    run_segment(sma, p, ex, ts, o, h, lo, c, v, len(ts), de[:0], st)  # nothing to run
    listed = [o.tolist(), h.tolist(), lo.tolist(), c.tolist(), v.tolist()]
    from_lists = run_segment(sma, p, ex, ts.tolist(), *listed, 0, de.tolist(), st.tolist())
    # other dtypes, orders and strides: the kernel is called without Numba's dispatcher,
    # whose machine code would read an array of another type without a word
    strided = [np.repeat(a, 2)[::2] for a in (ts, o, h, lo, c, v)]
    other = run_segment(
        sma, np.asfortranarray(np.tile(p, (2, 1)))[:1], np.asfortranarray(ex),
        ts.astype(np.uint64), *strided[1:], np.int32(0), de.astype(np.int32),
        np.asfortranarray(st),
    )  # fmt: skip
    from_strided = run_segment(sma, p, ex, *strided, 0, np.repeat(de, 2)[::2], st)
    for r in (again, from_lists, other, from_strided):
        assert np.array_equal(r.equity, first.equity) and np.array_equal(r.state, first.state)
        assert np.array_equal(r.fill_ts, first.fill_ts)
        assert np.array_equal(r.snapshots, first.snapshots)
    kernel = engine_kernel.dispatcher(sma)  # after first use
    assert len(kernel.signatures) == 1, kernel.signatures


# ----------------------------------------------------------------------------- loading files

USER_FILE = '''
import numpy as np
from numba import njit

from incbt.engine import Param, strategy

THRESHOLD = {threshold}


@njit
def above(x, y):
    return x > y + THRESHOLD


@strategy(params={{"n": Param(int, 3, min=1)}}, state=("seen",), warmup=lambda p: p["n"])
def momentum(p, s, o, h, l, c, v, i):
    """Long when the close is above the close n bars ago."""
    n = int(p[0])
    s[0] += 1.0
    if s[0] <= n:
        return 0
    return 1 if above(c[i], c[i - n]) else -1


@strategy(name="flat")
def do_nothing(p, s, o, h, l, c, v, i):
    return 0
'''


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_load_strategies_from_a_file(tmp_path):
    found = load_strategies(write(tmp_path / "mine.py", USER_FILE.format(threshold=0.0)))
    assert list(found) == ["flat", "momentum"]
    mom = found["momentum"]
    assert mom.warmup({"n": 4}) == 4 and mom.doc.startswith("Long when")
    bars = make_bars(6, 3)
    res = run_engine("momentum", [{"n": 1}, {"n": 3}], bars, strat=mom)
    assert res.ok and res.fill_qty.size > 0
    c = bars["close"].to_numpy()
    assert res.state[0, SIGNAL] == (1 if c[-1] > c[-2] else -1)
    # the kernel is a generated module, cached by Numba next to it or in NUMBA_CACHE_DIR
    path = kernel_path(mom)
    assert path.exists() and "momentum" in path.name
    cache_root = os.environ.get("NUMBA_CACHE_DIR") or str(path.parent)
    assert glob.glob(f"{cache_root}/**/{path.stem}*.nbi", recursive=True)


def test_code_version_follows_the_code(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    v1 = load_strategies(write(tmp_path / "a" / "s.py", USER_FILE.format(threshold=0.0)))
    v2 = load_strategies(write(tmp_path / "b" / "s.py", USER_FILE.format(threshold=0.0)))
    v3 = load_strategies(write(tmp_path / "c" / "s.py", USER_FILE.format(threshold=0.5)))
    # same code anywhere: same version; a changed constant read by a helper: a new version
    assert v1["momentum"].code_version == v2["momentum"].code_version
    assert v1["momentum"].code_version != v3["momentum"].code_version
    assert v1["flat"].code_version == v3["flat"].code_version
    assert ENGINE_VERSION.startswith("incbt-engine-")


EDITABLE = """
from incbt.engine import Param, strategy

@strategy(name="ed", params={{"n": Param(int, 5, min=1, help={help!r})}}, warmup=lambda p: p["n"])
def ed(p, s, o, h, l, c, v, i):
    {doc}
    n = int(p[0]){comment}
    return 1 if c[i] > c[i - n] else {sign}1
"""


def test_code_version_ignores_comments_docstrings_layout_and_help_texts(tmp_path):
    """A step's docstring, comments, blank lines or a parameter's help text edited keep
    its code version, so its runs are not recomputed for them; the code edited does not."""
    forms = {
        "base": dict(help="lookback", doc='"""Long above the close n bars ago."""',
                     comment="", sign="-"),
        "words": dict(help="bars back", doc='"""Long when up over n bars."""',
                      comment="  # the lookback\n\n", sign="-"),
        "code": dict(help="lookback", doc='"""Long above the close n bars ago."""',
                     comment="", sign="+"),
    }
    versions = {}
    for k, fmt in forms.items():
        (tmp_path / k).mkdir()
        found = load_strategies(write(tmp_path / k / "s.py", EDITABLE.format(**fmt)))
        versions[k] = found["ed"].code_version
    assert versions["words"] == versions["base"] != versions["code"]
    # a warm-up lambda on a line of its own in the decorator's call: that line alone does
    # not parse; its comment edited kept the version only once it was read as tokens
    # (review 2026-12-05)
    lines = []
    for k, body in enumerate(['p["n"])  # bars back', 'p["n"])  # the lookback, in bars',
                              'p["n"] + 0)']):
        text = EDITABLE.format(**forms["base"]).replace(
            ', warmup=lambda p: p["n"])', ',\n           warmup=lambda p: ' + body)
        (tmp_path / f"l{k}").mkdir()
        lines.append(load_strategies(write(tmp_path / f"l{k}" / "s.py", text))["ed"].code_version)
    assert lines[0] == lines[1] != lines[2]


CLOSED_OVER = """
from incbt.engine import strategy
import {cfg}

def make(level):
    @strategy(name="lvl")
    def step(p, s, o, h, l, c, v, i):
        return 1 if c[i] > level else -1
    return step

lvl = make({level})

@strategy(name="lvl2")
def lvl2(p, s, o, h, l, c, v, i):
    return 1 if c[i] > {cfg}.LEVEL else -1
"""


@pytest.mark.parametrize("change", ["closure", "module"])
def test_code_version_follows_closed_over_values_and_module_attributes(tmp_path, change):
    """A level captured from an enclosing function (``make(120.0)``) or read as a user
    module's attribute (``cfg.LEVEL``) is frozen by Numba like a global: found by QA
    2026-12-05, edited, it kept the code version, and the old results stood as current."""
    versions = []
    for k, (level, const) in enumerate([(120.0, 120.0), (120.0, 120.0),
                                        (500.0, 120.0) if change == "closure" else (120.0, 500.0)]):
        d = tmp_path / str(k)
        d.mkdir()
        cfg = "incbt_test_cfg"  # imported afresh from each folder
        (d / f"{cfg}.py").write_text(f"LEVEL = {const}\n")
        sys.path.insert(0, str(d))
        sys.modules.pop(cfg, None)
        try:
            found = load_strategies(write(d / "s.py", CLOSED_OVER.format(cfg=cfg, level=level)))
        finally:
            sys.path.remove(str(d))
            sys.modules.pop(cfg, None)
        versions.append((found["lvl"].code_version, found["lvl2"].code_version))
    assert versions[0] == versions[1]  # the same values in another folder: the same version
    moved = 0 if change == "closure" else 1
    assert versions[2][moved] != versions[0][moved]
    assert versions[2][1 - moved] == versions[0][1 - moved]


VALUES_NOT_NAMES = """
import numba
from incbt.engine import strategy

INIT = {init}
LEVELS = ((0.0, {level}),)
K = {k}
WARM = {warm}

@numba.njit
def above(a, b, k=K):
    return a > b * k

@strategy(name="vals", state={{"seen": INIT}}, warmup=WARM)
def vals(p, s, o, h, l, c, v, i):
    s[0] += 1.0
    return 1 if above(c[i], o[i], 1.0) and s[0] > LEVELS[0][1] else -1
"""


@pytest.mark.parametrize("edit", ["init", "level", "k", "warm"])
def test_code_version_follows_values_the_code_holds_not_their_names(tmp_path, edit):
    """QA 2026-12-06: a state slot's first value from a global (``state={"seen":
    INIT}``), a nested tuple (``LEVELS[0][1]``) and a helper's default argument from a
    global (``k=K``) were hashed by name, not value: edited, the runs kept their old
    results. So was an int warm-up given by a name."""
    base = dict(init=0.0, level=0.001, k=1.0, warm=0)
    edited = base | {edit: {"init": -200.0, "level": 0.002, "k": 2.0, "warm": 3}[edit]}
    versions = []
    for k, values in enumerate([base, base, edited]):
        (tmp_path / str(k)).mkdir()
        text = VALUES_NOT_NAMES.format(**values)
        found = load_strategies(write(tmp_path / str(k) / "s.py", text))
        versions.append(found["vals"].code_version)
    assert versions[0] == versions[1] != versions[2]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("def oops(:\n", r"failed to import: SyntaxError"),
        ("raise RuntimeError('no data here')\n", r"failed to import: RuntimeError: no data here"),
        ("X = 1\n", r"defines no strategy at its top level: decorate a step function with"),
        # a warm-up rule that fails or returns nonsense names the parameters (QA 2026-12-05)
        (
            "from incbt.engine import Param, strategy\n"
            "@strategy(params={'n': Param(int, 5)}, warmup=lambda p: p['m'])\n"
            "def a(p, s, o, h, l, c, v, i):\n    return 0\n",
            r"warmup rule raised KeyError: 'm' for the parameters \{'n': 5\}",
        ),
        (
            "from incbt.engine import Param, strategy\n"
            "@strategy(params={'n': Param(int, 5)}, warmup=lambda p: -p['n'])\n"
            "def a(p, s, o, h, l, c, v, i):\n    return 0\n",
            r"warmup returned -5 for the parameters \{'n': 5\}; it must be an int >= 0",
        ),
        # found by QA 2026-12-05: the command exited 3 without a word; a built-in's name
        # ran the file's step in its place
        ("import sys\nsys.exit(3)\n", r"exits when imported \(sys.exit\(3\)\).*__main__"),
        (
            "from incbt.engine import strategy\n"
            "@strategy(name='sma_cross')\ndef a(p, s, o, h, l, c, v, i):\n    return 0\n",
            r"defines 'sma_cross', a built-in's name: give yours another",
        ),
        (
            "from incbt.engine import strategy\n"
            "@strategy(name='twin')\ndef a(p, s, o, h, l, c, v, i):\n    return 0\n"
            "@strategy(name='twin')\ndef b(p, s, o, h, l, c, v, i):\n    return 0\n",
            r"defines strategy 'twin' twice",
        ),
        (
            "from incbt.engine import Param, strategy\n"
            "@strategy(params={'x': Param(int, 0, min=1)})\n"
            "def a(p, s, o, h, l, c, v, i):\n    return 0\n",
            r"bad\.py: strategy 'a' \(default\): parameter 'x' = 0 is out of range",
        ),
    ],
)
def test_load_strategies_errors(tmp_path, text, pattern):
    with pytest.raises(StrategyError, match=pattern):
        load_strategies(write(tmp_path / "bad.py", text))


def test_load_strategies_missing_file(tmp_path):
    with pytest.raises(StrategyError, match=r"strategy file .*nope\.py does not exist"):
        load_strategies(tmp_path / "nope.py")
    with pytest.raises(StrategyError, match=r"strategy file .* is a folder: give the \.py file"):
        load_strategies(tmp_path)


# ----------------------------------------------------------------------------- fork replay


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_replay_over_the_whole_history_rebuilds_the_strategy_state(name):
    # when the warm-up covers every bar since the run start, the replay is the run itself
    strat = get_strategy(name)
    params = {
        "sma_cross": {"fast": 3, "slow": 40},
        "ema_cross": {"fast": 3, "slow": 40},
        "breakout": {"lookback": 40},
        "bollinger": {"window": 41, "k": 1.0},
        "rsi": {"window": 40, "lower": 45.0, "upper": 55.0},
    }[name]
    bars = make_bars(8, 4, min_bars=3, max_bars=9)
    full = run_engine(name, [params], bars)
    ts, o, h, lo, c, v = bar_arrays(bars)
    end = int(day_ends(ts)[1])
    assert end <= strat.warmup(params)
    snap = full.snapshots[:, 1, :]
    other = snap.copy()
    other[:, ENGINE_WIDTH:] = 123.0  # replay ignores the old strategy slots
    got = warmup_replay(strat, params_from_dict(strat, params)[None], other, o, h, lo, c, v, end)
    assert got.tobytes() == snap.tobytes()


def test_fork_carries_the_position_and_rebuilds_the_windows():
    sma = get_strategy("sma_cross")
    bars = make_bars(12, 6, min_bars=10, max_bars=20)
    ts, o, h, lo, c, v = bar_arrays(bars)
    de = day_ends(ts)
    base = run_engine("sma_cross", [{"fast": 2, "slow": 5}], bars, {"fee_bps": 1.0})
    d = 2  # fork effective on day d + 1
    end = int(de[d])
    new = {"fast": 3, "slow": 8}
    p = params_from_dict(sma, new)[None]
    st = warmup_replay(sma, p, base.snapshots[:, d, :], o, h, lo, c, v, end)
    # engine fields kept: position, cash, pending order, previous equity, bar count
    assert st[0, :ENGINE_WIDTH].tobytes() == base.snapshots[0, d, :ENGINE_WIDTH].tobytes()
    assert st[0, ENGINE_WIDTH] == 8.0  # windows full: 8 bars replayed
    assert st[0, ENGINE_WIDTH + 2] == sum(c[end - 8 : end].tolist())  # sum_slow, left to right
    h0 = end - 8
    seg = bars.iloc[h0:].reset_index(drop=True)
    fork = run_engine("sma_cross", [new], seg, {"fee_bps": 1.0}, start=end - h0, state=st)
    again = run_engine("sma_cross", [new], seg, {"fee_bps": 1.0}, start=end - h0, state=st)
    assert fork.ok and fork.equity.tobytes() == again.equity.tobytes()
    assert fork.n_days == base.n_days - d - 1
    if base.snapshots[0, d, PENDING]:
        assert fork.fill_bar[0] == end - h0  # the base run's pending order fills first
    assert fork.state[0, CASH] != base.snapshots[0, d, CASH] or fork.fill_qty.size == 0


CHILD = """
import sys, numpy as np
from incbt.engine import load_strategies, initial_state, params_from_dict, run_segment
from incbt.engine import kernel
strat = load_strategies(sys.argv[1])["momentum"]
n = 200
c = 100.0 + np.cumsum(np.sin(np.arange(n)))
ts = np.arange(n, dtype=np.int64)
res = run_segment(strat, params_from_dict(strat, {"n": 2})[None], np.array([[1e5, 1.0, 1.0]]),
                  ts, c, c, c, c, c, 0, np.array([100, 200]), initial_state(strat, 1))
fn = kernel.dispatcher(strat)
hits, misses = fn.stats.cache_hits.values(), fn.stats.cache_misses.values()
print(res.equity[0, -1].hex(), sum(hits), sum(misses))
"""


def test_kernel_cache_is_reused_by_other_processes(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = USER_FILE.format(threshold=0.125)
    outs = []
    # a cache of its own, empty: what a warm one holds from other runs hid a kernel
    # compiled again in every process (2026-12-06: a step that compiled without NRT was
    # marked as needing it, and the next process compiled the NRT kernel)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    for folder in ("a", "a", "b"):  # the same file again, then a copy elsewhere
        path = write(tmp_path / folder / "strats.py", text)
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert run.returncode == 0, run.stderr
        outs.append(run.stdout.split())
    assert outs[0][0] == outs[1][0] == outs[2][0]  # same bits
    assert outs[1][1:] == ["1", "0"] and outs[2][1:] == ["1", "0"]  # loaded from the disk cache
    assert not list((tmp_path / "cache").rglob("*.needs-nrt"))  # it compiled without NRT


def test_the_documented_example_works(tmp_path):
    import incbt.engine.strategy_api as doc_module

    doc = doc_module.__doc__
    block = doc.split("::\n\n", 1)[1].split("\n\n")
    code = []
    for para in block:  # the indented paragraphs right after "::"
        if not para.startswith("    "):
            break
        code.append(textwrap.dedent(para))
    found = load_strategies(write(tmp_path / "doc_example.py", "\n\n".join(code) + "\n"))
    strat = found["ema_trend"]
    assert strat.param_names == ("n",) and strat.state_names == ("seen", "ema")
    res = run_engine("ema_trend", [{"n": 3}, {}], make_bars(2, 4), strat=strat)
    assert res.ok and res.fill_qty.size > 0


def test_strategy_error_is_in_the_package_tree():
    import incbt.errors

    assert issubclass(StrategyError, incbt.errors.StrategyError)
    assert issubclass(StrategyError, incbt.errors.UserError)
    assert issubclass(StrategyError, ValueError)
    err = StrategyError("x")
    assert incbt.errors.map_dependency_error(err, "running") is err


def test_the_engine_imports_no_io_library():
    import ast
    import pathlib

    import incbt.engine

    banned = {"pyarrow", "lmdb", "datafusion", "ray", "pandas"}
    for path in pathlib.Path(incbt.engine.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & banned, (path.name, names)


HELPER = """
from numba import njit

LIMIT = {limit}


@njit
def clip(x):
    return min(x, LIMIT)
"""

USES_HELPER = """
import {module}
from incbt.engine import strategy


@strategy(state=("n",))
def clipped(p, s, o, h, l, c, v, i):
    s[0] += 1.0
    return 1 if {module}.clip(c[i]) > 100.0 else -1
"""


def test_helper_modules_next_to_the_file_are_importable_and_versioned(tmp_path):
    import sys

    versions = []
    module = "engine_test_helper"
    for k, limit in enumerate((1e9, 1e9, 50.0)):
        folder = tmp_path / str(k)
        folder.mkdir()
        write(folder / f"{module}.py", HELPER.format(limit=limit))
        sys.modules.pop(module, None)  # as in a new process: a module is imported once
        strat = load_strategies(write(folder / "s.py", USES_HELPER.format(module=module)))
        versions.append(strat["clipped"].code_version)
    # the strategy file is the same each time; only the helper's constant changed
    assert versions[0] == versions[1] != versions[2]
    res = run_engine("clipped", [{}], make_bars(1, 2), strat=strat["clipped"])
    assert res.ok and np.all(res.pos[0] <= 0)  # clip at 50 < 100: always short


SIGN_HELPER = """
from numba import njit

SIGN = {sign}


@njit
def side():
    return SIGN
"""

USES_SIGN = """
import {module}
from incbt.engine import strategy


@strategy(state=("n",))
def {name}(p, s, o, h, l, c, v, i):
    s[0] += 1.0
    return {module}.side()
"""


def test_each_folder_s_strategies_get_the_helper_module_next_to_them(tmp_path):
    """QA 2026-12-06: two folders each with a `helpers.py` and a strategies file that
    imports it: the second file imported got the first's module (imported once per
    process, by name), so its strategy ran the other's code, and `status` saw its code
    changed. Each file gets its own folder's; files of one folder share one."""
    import subprocess
    import sys

    module = "engine_test_helper_twice"

    def strat(folder, name):
        text = USES_SIGN.format(module=module, name=name)
        return load_strategies(write(folder / f"{name}.py", text))[name]

    got = {}
    for name, sign in (("a", 1), ("b", -1)):
        (tmp_path / name).mkdir()
        write(tmp_path / name / f"{module}.py", SIGN_HELPER.format(sign=sign))
        got[name] = strat(tmp_path / name, f"long_{name}")
        assert sys.modules[module].__file__ == str(tmp_path / name / f"{module}.py")
    bars = make_bars(1, 2)
    pos = {k: run_engine(v.name, [{}], bars, strat=v).pos[0] for k, v in got.items()}
    assert np.all(pos["a"] > 0) and np.all(pos["b"] < 0)
    # a second file of folder a, imported after b's: a's module again, the same object
    a2 = strat(tmp_path / "a", "long_a2")
    mods = {k: v.py_step.__globals__[module] for k, v in (*got.items(), ("a2", a2))}
    assert mods["a2"] is mods["a"] and mods["b"] is not mods["a"]
    assert np.array_equal(run_engine("long_a2", [{}], bars, strat=a2).pos[0], pos["a"])
    # the code versions are those a fresh process reading each file alone gives
    for k, v in got.items():
        code = (
            "import sys; from incbt.engine import load_strategies; "
            f"print(load_strategies(sys.argv[1])['long_{k}'].code_version)"
        )
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / k / f"long_{k}.py")],
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == v.code_version


def test_a_helper_edited_in_a_process_that_stays_up_is_its_new_code(tmp_path):
    """QA 2026-12-08, a notebook's loop: a backtest of a strategy whose file imports a
    helper next to it, the helper edited, the same backtest again in the same process
    gave the old run (the helper imported once per process), `status` saw nothing stale,
    while `incbt update` in another process replaced the run, and the notebook's next
    backtest brought it back. The edited helper is imported again, with the file."""
    import incbt
    from incbt.bars.generate import generate

    module = "engine_test_helper_edited"
    generate(str(tmp_path / "data"), instruments=2, days=3, seed=5)
    store = incbt.init(str(tmp_path / "s"))
    store.ingest(str(tmp_path / "data"))
    (tmp_path / "code").mkdir()
    helper = tmp_path / "code" / f"{module}.py"
    write(helper, SIGN_HELPER.format(sign=1))
    path = str(write(tmp_path / "code" / "signs.py", USES_SIGN.format(module=module, name="sg")))
    first = store.backtest("sg", {}, strategies_file=path)
    assert np.all(first.daily.column("pos").to_numpy() > 0)
    write(helper, SIGN_HELPER.format(sign=-1))
    os.utime(helper, ns=(os.stat(helper).st_mtime_ns + 10**9,) * 2)  # as a later edit
    assert [r.run_id for r in store.status().stale] == [first.run_id] * 2
    again = store.backtest("sg", {}, strategies_file=path)
    assert again.run_id != first.run_id
    assert np.all(again.daily.column("pos").to_numpy() < 0)
    store.update()  # the run of the old code replaced by the new one's
    assert [r.run_id for r in store.runs("sg")] == [again.run_id]
    assert not store.status().stale and store.verify().ok


# ----------------------------------------------------------------------------- timestamps

NS_MIN = 60_000_000_000


@strategy(
    params={"period": Param(int, 7, min=2), "n": Param(int, 2, min=1)},
    state=("seen",),
    warmup=lambda p: p["n"],
)
def clock(p, s, o, h, l, c, v, i, t):  # noqa: E741
    """Long in the first 3 minutes of every `period` (UTC minutes), else with momentum."""
    s[0] += 1.0
    if (t[i] // 60_000_000_000) % int(p[0]) < 3:
        return 1
    n = int(p[1])
    if s[0] <= n:
        return 0
    return 1 if c[i] > c[i - n] else -1


def _clock_signals(ts, close, period, n):
    """The signals `clock` must give, computed here in Python."""
    out = []
    for i in range(len(ts)):
        if (ts[i] // NS_MIN) % period < 3:
            out.append(1)
        elif i + 1 <= n:
            out.append(0)
        else:
            out.append(1 if close[i] > close[i - n] else -1)
    return out


def test_a_step_can_read_the_bars_timestamps():
    bars = make_bars(5, 4, min_bars=20, max_bars=40)
    ts, o, h, lo, c, v = bar_arrays(bars)
    res = run_engine("clock", [{"period": 7, "n": 2}, {"period": 5, "n": 1}], bars, strat=clock)
    assert res.ok and clock.takes_ts and not get_strategy("sma_cross").takes_ts
    for k, (period, n) in enumerate(((7, 2), (5, 1))):
        sig = _clock_signals(ts, c, period, n)
        prev = [0, *sig[:-1]]
        # an order at bar i's close when the signal changes, filled at bar i + 1's open
        want = [i + 1 for i in range(len(sig) - 1) if sig[i] != prev[i]]
        assert res.fill_bar[res.fill_set == k].tolist() == want
        assert res.fill_ts[res.fill_set == k].tolist() == ts[want].tolist()


def test_a_timestamp_step_resumes_bit_identically_and_replays_with_ts():
    bars = make_bars(9, 6, min_bars=8, max_bars=30)
    ts, o, h, lo, c, v = bar_arrays(bars)
    sets = [{"period": 4, "n": 3}, {"period": 9, "n": 1}]
    full = run_engine("clock", sets, bars, strat=clock)
    ends = day_ends(ts)
    for d in range(full.n_days - 1):
        b = int(ends[d])
        h0 = max(0, b - 3)
        part = run_engine("clock", sets, bars.iloc[h0:].reset_index(drop=True), start=b - h0,
                          state=full.snapshots[:, d, :].copy(), strat=clock)  # fmt: skip
        assert part.equity.tobytes() == full.equity[:, d + 1 :].tobytes()
        assert part.state.tobytes() == full.state.tobytes()
        later = full.fill_bar >= b
        assert part.fill_ts.tolist() == full.fill_ts[later].tolist()
    p = np.stack([params_from_dict(clock, s) for s in sets])
    with pytest.raises(StrategyError, match="reads the bars' timestamps: pass ts"):
        warmup_replay(clock, p, full.state, o, h, lo, c, v, len(ts))
    got = warmup_replay(clock, p, full.state, o, h, lo, c, v, len(ts), ts)
    assert got[:, ENGINE_WIDTH:].tolist() == [[3.0], [1.0]]  # n bars replayed from fresh


def test_step_arity_nine_is_the_timestamp_form_and_ten_is_rejected():
    with pytest.raises(StrategyError, match=r"or 9 with the bars' timestamps .* takes 10"):

        @strategy(params={})
        def long(p, s, o, h, l, c, v, i, t, extra):  # noqa: E741
            return 0


def test_a_step_using_a_bar_field_its_reads_leave_out_is_refused():
    """A field not read is given as zeros: a step reading h[i] with reads=("close",) ran
    on, always long, without a word (QA 2026-12-05)."""
    with pytest.raises(StrategyError, match=r"uses 'h' \(high\) but reads= \('close',\) "
                       r"leaves 'high' out.*add 'high' to reads"):
        @strategy(params={}, reads=("close",))
        def peeks(p, s, o, h, l, c, v, i):  # noqa: E741
            return 1 if h[i] > c[i] else 0

    @strategy(params={}, reads=("high", "close"))
    def declared(p, s, o, h, l, c, v, i):  # noqa: E741
        return 1 if h[i] > c[i] else 0

    assert declared.reads == ("high", "close")
    for name in ("sma_cross", "breakout", "ema_cross", "bollinger", "rsi"):  # the built-ins pass
        assert get_strategy(name).reads


def test_the_strategies_are_listed_from_python(tmp_path):
    """`incbt strategies` had no Python counterpart (QA 2026-12-05)."""
    import incbt

    assert list(incbt.strategies()) == ["bollinger", "breakout", "ema_cross", "rsi", "sma_cross"]
    found = incbt.strategies(str(write(tmp_path / "mine.py", USER_FILE.format(threshold=0.0))))
    assert {"flat", "momentum", "sma_cross"} <= set(found)
    assert "n (int, default 3, [1, inf])" in found["momentum"].describe()
    # a name not there: a dict's KeyError, said as incbt's, as store.sweeps()'s (QA
    # 2026-12-07: a bare `KeyError: 'sma_crosss'`)
    for error in (KeyError, incbt.StrategyError):
        with pytest.raises(error, match=r"^unknown strategy 'sma_crosss' \(did you mean "
                           r"'sma_cross'\?\); known strategies: bollinger, breakout, "
                           r"ema_cross, flat, momentum, rsi, sma_cross"):
            found["sma_crosss"]
    assert found.get("sma_crosss") is None and "sma_crosss" not in found


def test_a_strategies_file_is_imported_once_per_version(tmp_path, capsys):
    """QA 2026-12-06: a file's top-level code ran two or three times a call (each import
    runs it); now once per version of the file in a process, again once it changes."""
    from incbt.engine.strategy_api import import_strategies

    f = tmp_path / "p.py"
    f.write_text('import incbt\nprint("RAN")\n\n@incbt.strategy(params={}, state=())\n'
                 'def hold(p, s, o, h, l, c, v, i):\n    return 1\n')
    first = import_strategies(f)
    assert import_strategies(f) == first and import_strategies(str(f)) == first
    assert capsys.readouterr().out.count("RAN") == 1
    f.write_text(f.read_text().replace("return 1", "return -1"))
    assert import_strategies(f)[0].code_version != first[0].code_version
    assert capsys.readouterr().out.count("RAN") == 1


def test_a_damaged_kernel_file_is_written_again(tmp_path):
    """A kernel file no longer UTF-8 (a flipped byte) was read as text to compare: the
    UnicodeDecodeError was taken for the step raising, every pair of the strategy was
    recorded as failed and its stored days dropped (QA 2026-12-07)."""
    from incbt.engine.kernel import _write_once

    path = tmp_path / "k_x.py"
    text = "# a kernel\nx = 1\n"
    path.write_bytes(b"# a k\xffrnel\nx = 1\n")
    _write_once(path, text)
    assert path.read_text() == text
    before = path.stat().st_mtime_ns
    _write_once(path, text)  # the same text: left as it is (Numba's cache keys on mtime)
    assert path.stat().st_mtime_ns == before
