"""Running a batch of parameter sets of one strategy over one instrument's bars.

`run_segment` is the engine: pure arrays in, arrays out (see SEMANTICS.md,
"Per-instrument execution" and "Daily rows"). `warmup_replay` rebuilds the
strategy state for a fork.

How kernels are compiled: each strategy gets a generated module (source in
`_template.py`) written once to `<NUMBA_CACHE_DIR or tmp>/incbt_kernels/`,
named after the strategy and a hash of its code version, the template and
`_stack.py` (whose bar views and scratch arrays the kernels inline), so Numba's
`cache=True` keeps one compiled kernel per strategy version on disk (a changed
step or engine gives a new file, never a stale cache entry). The step
dispatcher (a fresh one per module) is set as the module's global `step`
before the first call;
Numba inlines it into the kernel. Kernels are compiled without Numba's
reference counting (`_nrt=False`): with it, every branchy step paid several
refcount calls per bar (measured 10x slower). A step that needs it
(allocates arrays) falls back to a kernel compiled with reference counting.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import re
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._template import KERNEL_SOURCE
from .errors import StrategyError
from .layout import BARS, ENGINE_FIELDS, ENGINE_WIDTH
from .strategy_api import Strategy, params_from_dict, params_to_dict

__all__ = [
    "SegmentResult",
    "initial_state",
    "kernel_path",
    "run_segment",
    "state_names",
    "state_width",
    "warmup_replay",
]

# the kernels' source and the code they inline from `_stack` (bar views, scratch arrays):
# Numba's cache follows neither a change of a called module's lowering nor of its text
_TEMPLATE_HASH = hashlib.sha256(
    KERNEL_SOURCE.encode() + Path(__file__).with_name("_stack.py").read_bytes()
).hexdigest()[:16]
_LOCK = threading.Lock()
_MODULES: dict[str, types.ModuleType] = {}


def state_width(strat: Strategy) -> int:
    """Floats in one snapshot: the engine fields plus the strategy's slots."""
    return ENGINE_WIDTH + len(strat.state_names)


def state_names(strat: Strategy) -> tuple[str, ...]:
    """Names of the snapshot's slots, engine fields first (see `incbt.engine.layout`)."""
    return ENGINE_FIELDS + tuple(strat.state_names)


def initial_state(strat: Strategy, n_sets: int = 1) -> np.ndarray:
    """The state of a run before its first bar: (n_sets, state_width) float64."""
    st = np.zeros((n_sets, state_width(strat)), dtype=np.float64)
    st[:, ENGINE_WIDTH:] = np.asarray(strat.state_init, dtype=np.float64)
    return st


# ----------------------------------------------------------------------------- compilation


def _kernel_dir() -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "incbt-numba")
    return Path(base) / "incbt_kernels"


def _tag(strat: Strategy, nrt: bool) -> str:
    # the step's module name is in Numba's cached code (see load_strategies)
    safe = re.sub(r"\W", "_", strat.name)[:40]
    key = f"{strat.code_version}:{_TEMPLATE_HASH}:{nrt}:{strat.py_step.__module__}"
    h = hashlib.sha256(key.encode()).hexdigest()
    return f"{safe}_{h[:16]}"


def kernel_path(strat: Strategy, nrt: bool = False) -> Path:
    """Where the generated kernel module of a strategy lives."""
    return _kernel_dir() / f"k_{_tag(strat, nrt)}.py"


def _source(strat: Strategy, nrt: bool) -> str:
    n_params, n_state = len(strat.params), len(strat.state_names)
    subs = {
        "__TAG__": _tag(strat, nrt),
        "__NAME__": strat.name,
        "__VERSION__": strat.code_version,
        "__NRT__": str(nrt),
        "__NPA__": str(max(1, n_params)),
        "__NSA__": str(max(1, n_state)),
        "__NP__": str(n_params),
        "__NS__": str(n_state),
        "__EW__": str(ENGINE_WIDTH),
        "__T__": ", bars_view(t, i)" if strat.takes_ts else "",
    }
    src = KERNEL_SOURCE
    for key, val in subs.items():
        src = src.replace(key, val)
    return src


def _write_once(path: Path, text: str) -> None:
    """Write `text` unless the file already holds it: Numba's cache keys on the file's mtime."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _module(strat: Strategy, nrt: bool) -> types.ModuleType:
    tag = _tag(strat, nrt)
    with _LOCK:
        mod = _MODULES.get(tag)
        if mod is None:
            path = kernel_path(strat, nrt)
            _write_once(path, _source(strat, nrt))
            name = f"incbt_kernel_{tag}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
            # a dispatcher of its own: one that failed to type without NRT keeps failing
            import numba  # here, not at import: `import numba` costs ~0.2 s

            mod.__dict__["step"] = numba.njit(nogil=True, error_model=strat.error_model)(
                strat.py_step
            )
            _MODULES[tag] = mod
        return mod


def _nrt_marker(strat: Strategy) -> Path:
    return kernel_path(strat, False).with_suffix(".needs-nrt")


_RESOLVED: dict[tuple[str, str, str], Callable[..., int]] = {}


def _call(strat: Strategy, which: str, *args: object) -> int:
    """Call the strategy's kernel `which` ("run" or "replay"), compiling it on first use."""
    key = (strat.code_version, strat.py_step.__module__, which)
    fn = _RESOLVED.get(key)
    if fn is not None:
        return fn(*args)
    from numba.core.errors import NumbaError

    use_nrt = _nrt_marker(strat).exists()
    fn = getattr(_module(strat, use_nrt), f"{which}_{_tag(strat, use_nrt)}")
    try:
        out = fn(*args)
    except NumbaError as e:
        if use_nrt:
            raise _compile_error(strat, e) from e
        # the step may need reference counting (it allocates): try the slower kernel once
        fn = getattr(_module(strat, True), f"{which}_{_tag(strat, True)}")
        try:
            out = fn(*args)
        except NumbaError as e2:
            raise _compile_error(strat, e2) from e
        with contextlib.suppress(OSError):  # only a hint for the next process
            _nrt_marker(strat).touch()
    _RESOLVED[key] = fn
    return out


def _compile_error(strat: Strategy, e: Exception) -> StrategyError:
    return StrategyError(
        f"strategy {strat.name!r}: its step does not compile with Numba "
        "(signature (p, s, o, h, l, c, v, i[, t]) -> -1, 0 or 1; functions it calls must be "
        f"decorated with @numba.njit; it may use numpy and math, not Python objects):\n{e}"
    )


# ----------------------------------------------------------------------------- run_segment


@dataclass
class SegmentResult:
    """What `run_segment` returns. Days are those of `day_ends`, in order.

    Daily arrays are (n_sets, n_days): equity, pnl, pos, fees, turnover
    (float64) and fills (int64). snapshots is (n_sets, n_days, width): the full
    state at each day's close. Fills are flat arrays ordered by set, then bar:
    fill_set, fill_bar (index into the loaded arrays), fill_ts, fill_qty,
    fill_price, fill_fee. state is the final (n_sets, width) state. errors[k]
    is None or a message; for a set with an error every daily value and
    snapshot is NaN, it has no fills and its state is the input state.
    """

    equity: np.ndarray
    pnl: np.ndarray
    pos: np.ndarray
    fees: np.ndarray
    fills: np.ndarray
    turnover: np.ndarray
    snapshots: np.ndarray
    fill_set: np.ndarray
    fill_bar: np.ndarray
    fill_ts: np.ndarray
    fill_qty: np.ndarray
    fill_price: np.ndarray
    fill_fee: np.ndarray
    state: np.ndarray
    bars_processed: int
    errors: list[str | None]

    @property
    def n_sets(self) -> int:
        return int(self.equity.shape[0])

    @property
    def n_days(self) -> int:
        return int(self.equity.shape[1])

    @property
    def ok(self) -> bool:
        """True when no parameter set failed."""
        return all(e is None for e in self.errors)


def _f8_2d(name: str, a: object, rows: int | None, cols: int) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim == 1 and rows is None:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != cols or (rows is not None and arr.shape[0] != rows):
        want = f"({rows if rows is not None else 'n_sets'}, {cols})"
        raise StrategyError(f"{name} must have shape {want}; got {arr.shape}")
    return arr


def _bars(ts: object, cols: dict[str, object]) -> tuple[np.ndarray, list[np.ndarray]]:
    t = np.ascontiguousarray(ts, dtype=np.int64)
    if t.ndim != 1:
        raise StrategyError(f"ts must be 1-D; got shape {t.shape}")
    out = []
    for name, a in cols.items():
        arr = np.ascontiguousarray(a, dtype=np.float64)
        if arr.shape != t.shape:
            raise StrategyError(f"{name} has shape {arr.shape}; ts has {t.shape}")
        view = arr.view()
        view.flags.writeable = False  # one kernel signature, and a step cannot write to bars
        out.append(view)
    return t, out


def _check_days(day_ends: object, start: int, n: int) -> np.ndarray:
    de = np.ascontiguousarray(day_ends, dtype=np.int64).reshape(-1)
    if start == n:
        if de.size:
            raise StrategyError("day_ends must be empty when there is no bar after start")
        return de
    if (
        de.size == 0
        or int(de[-1]) != n
        or int(de[0]) <= start
        or (de.size > 1 and bool((de[1:] <= de[:-1]).any()))
    ):
        raise StrategyError(
            f"day_ends must be strictly increasing exclusive ends of days in ({start}, {n}], "
            f"ending at {n}; got {de[:5].tolist()}{'...' if de.size > 5 else ''}"
        )
    view = de.view()
    view.flags.writeable = False
    return view


_WARMUPS: dict[tuple[str, bytes], int] = {}


def _warmup(strat: Strategy, row: np.ndarray, k: int) -> int:
    """Validate a params row and return its warm-up; memoised, as every segment asks again."""
    key = (strat.code_version, row.tobytes())
    n = _WARMUPS.get(key)
    if n is None:
        given = {spec.name: float(x) for spec, x in zip(strat.params, row.tolist(), strict=True)}
        try:
            params_from_dict(strat, given)
        except StrategyError as e:
            raise StrategyError(f"parameter set {k}: {e}") from None
        if len(_WARMUPS) > 100_000:
            _WARMUPS.clear()
        n = _WARMUPS[key] = strat.warmup(given)
    return n


_EXEC_OK: set[bytes] = set()  # exec_params blocks already checked (every segment asks again)


def _check_exec(ex: np.ndarray) -> None:
    key = ex.tobytes()
    if key in _EXEC_OK:
        return
    _check_exec_rows(ex)
    if len(_EXEC_OK) > 10_000:
        _EXEC_OK.clear()
    _EXEC_OK.add(key)


def _check_exec_rows(ex: np.ndarray) -> None:
    bad = ~(np.isfinite(ex).all(axis=1) & (ex[:, 0] > 0) & (ex[:, 1:] >= 0).all(axis=1))
    bad |= ex[:, 2] >= 1e4
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise StrategyError(
            f"exec_params of set {k} = {ex[k].tolist()} are invalid: need notional > 0, "
            "fee_bps >= 0 and 0 <= slippage_bps < 10000 (see exec_params_from_dict)"
        )


_FILL_RATE: dict[str, float] = {}  # per strategy: the most fills per bar-step seen so far


def _fill_capacity(strat: Strategy, bar_steps: int) -> int:
    """Room for fills: enough for what this strategy did before, rarely a rerun."""
    rate = _FILL_RATE.get(strat.code_version, 1.0 / 16.0)
    return int(min(bar_steps, bar_steps * rate * 1.25 + 256))


def _note_fills(strat: Strategy, bar_steps: int, n_fills: int) -> None:
    if bar_steps >= 1000:
        rate = n_fills / bar_steps
        if rate > _FILL_RATE.get(strat.code_version, 0.0):
            _FILL_RATE[strat.code_version] = rate


def run_segment(
    strat: Strategy,
    params: np.ndarray,
    exec_params: np.ndarray,
    ts: np.ndarray,
    open: np.ndarray,  # noqa: A002 - the bar field's name
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    start: int,
    day_ends: np.ndarray,
    state: np.ndarray,
) -> SegmentResult:
    """Run a batch of parameter sets of `strat` over one instrument's bars.

    params: (n_sets, n_params) rows from `params_from_dict`; exec_params:
    (n_sets, 3) rows [notional, fee_bps, slippage_bps]; ts, open..volume: the
    loaded bars, history first: bars [0, start) are only re-read by the
    strategy (its warm-up), bars [start, n) are executed; day_ends: exclusive
    end index of each trading day in [start, n); state: (n_sets, width), fresh
    from `initial_state` or a snapshot. Inputs are not modified.
    """
    n_params = len(strat.params)
    p = _f8_2d("params", params, None, n_params)
    n_sets = p.shape[0]
    ex = _f8_2d("exec_params", exec_params, n_sets, 3)
    width = state_width(strat)
    st_in = _f8_2d("state", state, n_sets, width)
    t, cols = _bars(ts, {"open": open, "high": high, "low": low, "close": close, "volume": volume})
    n = int(t.shape[0])
    start = int(start)
    if not 0 <= start <= n:
        raise StrategyError(f"start = {start} is outside the loaded bars [0, {n}]")
    de = _check_days(day_ends, start, n)
    _check_exec(ex)
    for k in range(n_sets):
        need = min(_warmup(strat, p[k], k), int(st_in[k, BARS]))
        if start < need:
            raise StrategyError(
                f"strategy {strat.name!r}, parameter set {k} "
                f"({params_to_dict(strat, p[k])}) needs {need} warm-up bars before start; "
                f"got {start}: load more history"
            )
    if n_sets == 0:
        return _assemble([], 0, width, de.size, t, 0, [], st_in)
    cap = _fill_capacity(strat, (n - start) * n_sets)
    try:
        raw = _run_raw(strat, p, ex, [t, *cols], start, de, st_in, cap)
        parts = [raw]
        owners = [np.arange(n_sets)]
        errors: list[str | None] = [_signal_error(strat, p, t, raw, k) for k in range(n_sets)]
    except StrategyError:
        raise
    except Exception:
        # a step raised: find out which sets, keep the others (each set is independent)
        parts, owners, errors = [], [], []
        for k in range(n_sets):
            try:
                one = _run_raw(strat, p[k : k + 1], ex[k : k + 1], [t, *cols], start, de,
                               st_in[k : k + 1], cap)  # fmt: skip
            except StrategyError:
                raise
            except Exception as e:  # noqa: BLE001 - reported per set, not swallowed
                errors.append(
                    f"strategy {strat.name!r}, parameter set {k} ({params_to_dict(strat, p[k])}): "
                    f"the step raised {type(e).__name__}: {e}"
                )
                continue
            parts.append(one)
            owners.append(np.array([k]))
            errors.append(_signal_error(strat, p[k : k + 1], t, one, 0, k))
    pairs = list(zip(owners, parts, strict=True))
    return _assemble(pairs, n_sets, width, de.size, t, (n - start) * n_sets, errors, st_in)


_FILL_KEYS = ("f_set", "f_bar", "f_qty", "f_px", "f_fee")  # a raw result's fill arrays
_FILL_INT = ("f_set", "f_bar")
_DAILY_FLOAT = ("equity", "pnl", "pos", "fees", "turnover")
_SCRATCH = threading.local()


def _fill_buffers(cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-thread scratch buffers for fills, reused across calls (fresh memory is slow to
    touch): (2, cap) int64 sets and bars, (3, cap) float64 qty, price and fee."""
    bufs = getattr(_SCRATCH, "fills", None)
    if bufs is None or bufs[0].shape[1] < cap:
        size = max(cap, 4096)
        bufs = (np.empty((2, size), dtype=np.int64), np.empty((3, size)))
        _SCRATCH.fills = bufs
    return bufs[0][:, :cap], bufs[1][:, :cap]


def _run_raw(
    strat: Strategy,
    p: np.ndarray,
    ex: np.ndarray,
    cols: list[np.ndarray],
    start: int,
    de: np.ndarray,
    st_in: np.ndarray,
    cap: int,
) -> dict[str, np.ndarray]:
    """One kernel call (retried once with the exact fill capacity if it overflowed).

    ``cols``: the bars' ts, open, high, low, close, volume."""
    n_sets, width = st_in.shape
    n_days = de.shape[0]
    bar_steps = (cols[0].shape[0] - start) * n_sets
    while True:
        st = st_in.copy()
        block = np.empty((5, n_sets, n_days))  # one allocation for the float daily outputs
        fills = np.empty((n_sets, n_days), dtype=np.int64)
        snaps = np.empty((n_sets, n_days, width))
        f_int, f_flt = _fill_buffers(cap)
        counts = np.empty((2, n_sets), dtype=np.int64)  # fills per set; bar of a bad signal
        counts[0] = 0
        counts[1] = -1
        err_val = np.zeros(n_sets)
        total = _call(strat, "run", p, ex, *cols, np.int64(start), de, st,
                      block, fills, snaps, f_int, f_flt, counts, err_val)  # fmt: skip
        _note_fills(strat, bar_steps, total)
        if total <= cap:
            out = {"equity": block[0], "pnl": block[1], "pos": block[2], "fees": block[3],
                   "fills": fills, "turnover": block[4], "snapshots": snaps, "state": st,
                   "f_count": counts[0], "err_bar": counts[1], "err_val": err_val}  # fmt: skip
            ints = f_int[:, :total].copy()  # one copy of each block, viewed by field
            flts = f_flt[:, :total].copy()
            out["f_set"], out["f_bar"] = ints[0], ints[1]
            out["f_qty"], out["f_px"], out["f_fee"] = flts[0], flts[1], flts[2]
            return out
        cap = total


def _signal_error(
    strat: Strategy,
    p: np.ndarray,
    t: np.ndarray,
    raw: dict[str, np.ndarray],
    row: int,
    k: int | None = None,
) -> str | None:
    bar = int(raw["err_bar"][row])
    if bar < 0:
        return None
    k = row if k is None else k
    return (
        f"strategy {strat.name!r}, parameter set {k} ({params_to_dict(strat, p[row])}): "
        f"the step returned signal {float(raw['err_val'][row])!r} at bar {bar} (ts {int(t[bar])}); "
        "a signal must be -1, 0 or +1"
    )


def _assemble(
    parts: list[tuple[np.ndarray, dict[str, np.ndarray]]],
    n_sets: int,
    width: int,
    n_days: int,
    t: np.ndarray,
    bars_processed: int,
    errors: list[str | None],
    state_in: np.ndarray,
) -> SegmentResult:
    """Merge kernel outputs (each for the sets `owners`) into one result, in set order."""
    if len(parts) == 1 and len(parts[0][0]) == n_sets and errors.count(None) == n_sets:
        raw = parts[0][1]  # the common case: one batch, no error, no copies
        daily = raw
        snaps, state = raw["snapshots"], raw["state"]
        fills = {key: raw[key] for key in _FILL_KEYS}
    else:
        daily = {key: np.full((n_sets, n_days), np.nan) for key in _DAILY_FLOAT}
        daily["fills"] = np.zeros((n_sets, n_days), dtype=np.int64)
        snaps = np.full((n_sets, n_days, width), np.nan)
        state = state_in.copy()
        for owners, raw in parts:
            for row, k in enumerate(owners.tolist()):
                if errors[k] is not None:
                    continue
                for key in daily:
                    daily[key][k] = raw[key][row]
                snaps[k] = raw["snapshots"][row]
                state[k] = raw["state"][row]
        # kernel fills are in set order and a set with a signal error left none; the
        # parts hold disjoint sets in increasing order, so concatenating keeps set order
        fills = {
            key: np.concatenate([
                owners[raw[key]] if key == "f_set" and len(owners) != n_sets else raw[key]
                for owners, raw in parts
            ]) if parts else np.empty(0, dtype=np.int64 if key in _FILL_INT else np.float64)
            for key in _FILL_KEYS
        }  # fmt: skip
    return SegmentResult(
        equity=daily["equity"],
        pnl=daily["pnl"],
        pos=daily["pos"],
        fees=daily["fees"],
        fills=daily["fills"],
        turnover=daily["turnover"],
        snapshots=snaps,
        fill_set=fills["f_set"],
        fill_bar=fills["f_bar"],
        fill_ts=t[fills["f_bar"]],  # gathered here: a store in the kernel's loop cost more
        fill_qty=fills["f_qty"],
        fill_price=fills["f_px"],
        fill_fee=fills["f_fee"],
        state=state,
        bars_processed=bars_processed,
        errors=errors,
    )


# ----------------------------------------------------------------------------- fork


def warmup_replay(
    strat: Strategy,
    params: np.ndarray,
    state: np.ndarray,
    open: np.ndarray,  # noqa: A002 - the bar field's name
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    end: int,
    ts: np.ndarray | None = None,
) -> np.ndarray:
    """The state a fork starts from at bar `end` (the first bar of the fork's day D).

    For each set: the engine fields (signal, position, cash, pending order,
    previous equity, bar count) are kept from `state`; the strategy's slots
    are rebuilt for the new `params` by running the step, from a fresh
    strategy state and without execution, over the `warmup(params)` bars
    before `end` (fewer if fewer are loaded). `ts`: the bars' timestamps, needed
    by a step that reads them (`t`). Returns a new (n_sets, width) array.
    """
    p = _f8_2d("params", params, None, len(strat.params))
    n_sets = p.shape[0]
    width = state_width(strat)
    st = _f8_2d("state", state, n_sets, width).copy()
    if ts is None:
        if strat.takes_ts:
            raise StrategyError(
                f"strategy {strat.name!r} reads the bars' timestamps: pass ts to warmup_replay"
            )
        ts = np.zeros(np.shape(close), dtype=np.int64)
    t, cols = _bars(ts, {"open": open, "high": high, "low": low, "close": close, "volume": volume})
    n = cols[3].shape[0]
    end = int(end)
    if not 0 <= end <= n:
        raise StrategyError(f"end = {end} is outside the loaded bars [0, {n}]")
    first = np.array([max(0, end - _warmup(strat, p[k], k)) for k in range(n_sets)], np.int64)
    sstate = np.empty((n_sets, len(strat.state_names)))
    sstate[:] = np.asarray(strat.state_init, dtype=np.float64)
    if n_sets:
        try:
            _call(strat, "replay", p, t, *cols, first, np.int64(end), sstate)
        except StrategyError:
            raise
        except Exception as e:
            raise StrategyError(
                f"strategy {strat.name!r}: the step raised {type(e).__name__} "
                f"while replaying the warm-up: {e}"
            ) from e
    st[:, ENGINE_WIDTH:] = sstate
    return st
