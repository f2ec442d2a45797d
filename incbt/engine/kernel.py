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
import functools
import glob
import hashlib
import importlib.util
import itertools
import math
import os
import re
import sys
import tempfile
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from incbt.engine._breaks import BAD_SIGNAL
from incbt.errors import SetupError, refuse_without_jit

from ._template import KERNEL_SOURCE
from .errors import StrategyError
from .layout import BARS, ENGINE_FIELDS, ENGINE_WIDTH, SIGNAL
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

# the kernels' source and the code they inline from `_stack` (bar views, scratch arrays)
# with the words its checks raise (`_breaks`): Numba's cache follows neither a change of a
# called module's lowering nor of its text
_TEMPLATE_HASH = hashlib.sha256(
    KERNEL_SOURCE.encode()
    + Path(__file__).with_name("_stack.py").read_bytes()
    + Path(__file__).with_name("_breaks.py").read_bytes()
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


_FALLBACK: list[Path] = []  # the kernel folder chosen where _kernel_dir's is not usable


def _usable_kernel_dir() -> Path:
    """Where this process writes and imports its kernels: :func:`_kernel_dir`, or, where
    that cannot be made or written (NUMBA_CACHE_DIR read-only, under a file, another
    user's ``/tmp/incbt-numba``), this user's own (:func:`_own_kernel_dir`), said once. QA
    2026-12-06: the ``PermissionError`` of writing the kernel was taken as the step
    raising, every pair recorded as the strategy's failure, and not retried once the
    folder was fixed."""
    with _DIR_LOCK:  # one folder, one word, however many threads compile
        return _FALLBACK[0] if _FALLBACK else _choose_kernel_dir()


_DIR_LOCK = threading.Lock()


def _choose_kernel_dir() -> Path:
    want = _kernel_dir()
    try:
        want.mkdir(parents=True, exist_ok=True)
        if os.access(want, os.W_OK | os.X_OK):
            return want
        why = "it cannot be written"
    except OSError as exc:
        why = f"it cannot be made: {exc.strerror or exc}"
    try:
        own = _own_kernel_dir()
    except OSError as exc:
        raise SetupError(
            f"strategies cannot be compiled: their kernels go to {want}, where {why}, and "
            f"no temporary folder could be made either ({exc.strerror or exc}). Fix: set "
            "NUMBA_CACHE_DIR to a folder you may write to"
        ) from None
    import warnings

    warnings.warn(
        f"Numba's cache folder {want.parent}: {why}; strategies compile into {own} "
        "instead. Fix: set NUMBA_CACHE_DIR to a folder you may write to",
        RuntimeWarning,
        stacklevel=2,
    )
    _FALLBACK.append(own)
    return own


def _own_kernel_dir() -> Path:
    """This user's own kernel folder in the system's temporary folder, a cache across
    processes (a folder per process was left behind by every one that ended with
    ``os._exit``, each Ray worker's too: QA 2026-12-06); one this user does not own (or
    that is not a plain folder) is not used: a folder of this process's then."""
    import stat

    base = Path(tempfile.gettempdir()) / f"incbt-numba-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o700)
    st = os.lstat(base)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and os.access(base, os.W_OK):
        own = base / "incbt_kernels"
        own.mkdir(exist_ok=True)
        return own
    own = Path(tempfile.mkdtemp(prefix="incbt-numba-")) / "incbt_kernels"
    own.mkdir()
    return own


def _tag(strat: Strategy, nrt: bool) -> str:
    # the step's module name is in Numba's cached code (see load_strategies)
    safe = re.sub(r"\W", "_", strat.name)[:40]
    key = f"{strat.code_version}:{_TEMPLATE_HASH}:{nrt}:{strat.py_step.__module__}"
    h = hashlib.sha256(key.encode()).hexdigest()
    return f"{safe}_{h[:16]}"


def kernel_path(strat: Strategy, nrt: bool = False) -> Path:
    """Where the generated kernel module of a strategy lives."""
    return _usable_kernel_dir() / f"k_{_tag(strat, nrt)}.py"


def _source(strat: Strategy, nrt: bool) -> str:
    n_params, n_state = len(strat.params), len(strat.state_names)
    subs = {
        "__TAG__": _tag(strat, nrt),
        "__NAME__": strat.name,
        "__VERSION__": strat.code_version,
        "__NRT__": str(nrt),
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
        if path.read_bytes() == text.encode():  # bytes: a damaged file (not UTF-8 any
            return  # more) is written again, not read as the step failing (QA 2026-12-07)
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
    import numba  # here, not at import: `import numba` costs ~0.2 s

    refuse_without_jit()  # the machine's setting, never the strategy's fault
    tag = _tag(strat, nrt)
    with _LOCK:
        mod = _MODULES.get(tag)
        if mod is None:
            path = kernel_path(strat, nrt)
            try:
                _write_once(path, _source(strat, nrt))
            except OSError as exc:  # the machine's, never the strategy's (see above)
                raise SetupError(
                    f"strategy {strat.name!r} cannot be compiled: writing its kernel "
                    f"{path} failed: {exc.strerror or exc}. Fix: set NUMBA_CACHE_DIR to a "
                    "folder you may write to (with free space)"
                ) from None
            name = f"incbt_kernel_{tag}"
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except Exception as exc:  # noqa: BLE001 - the machine's, never the step's
                sys.modules.pop(name, None)
                raise SetupError(
                    f"strategy {strat.name!r} cannot be compiled: loading its kernel {path} "
                    f"failed: {type(exc).__name__}: {exc}. Fix: delete that file (incbt "
                    "writes it again), or set NUMBA_CACHE_DIR to another folder"
                ) from exc
            # a dispatcher of its own: one that failed to type without NRT keeps failing
            mod.__dict__["step"] = numba.njit(nogil=True, error_model=strat.error_model)(
                strat.py_step
            )
            _MODULES[tag] = mod
        return mod


def _nrt_marker(strat: Strategy) -> Path:
    return kernel_path(strat, False).with_suffix(".needs-nrt")


# Each kernel's machine code for its one signature (see _bars), called without Numba's
# dispatcher: the dispatcher types every argument of every call, ~9 us for a kernel's 18
# (of a ~150 us call over an instrument's 100 days; compute only over 100 instruments
# 28.9 -> 28.0 ms, 2026-12-07). The callers build every argument with the signature's
# types (_bars, _days, _f8_2d, fresh output arrays), as the entry point reads an array of
# another type without a word.
_RESOLVED: dict[tuple[str, str, str], Callable[..., int]] = {}
_DISPATCHERS: dict[tuple[str, str, str], Any] = {}  # the Numba dispatchers behind them
_PRELOADING: set[tuple[str, str, str]] = set()  # kernels a preload thread is loading


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
        entry = _loaded(fn, args)
        out = entry(*args)
    except NumbaError as e:
        if use_nrt:
            raise _compile_error(strat, e) from e
        # the step may need reference counting (it allocates): try the slower kernel once
        fn = getattr(_module(strat, True), f"{which}_{_tag(strat, True)}")
        try:
            entry = _loaded(fn, args)
            out = entry(*args)
        except NumbaError as e2:
            raise _compile_error(strat, e2) from e
        with contextlib.suppress(OSError):  # only a hint for the next process
            _nrt_marker(strat).touch()
    _DISPATCHERS[key] = fn
    _RESOLVED[key] = entry
    return out


def dispatcher(strat: Strategy, which: str = "run") -> Any:
    """The Numba dispatcher of the strategy's kernel ``which`` once called (None before):
    its ``signatures`` and cache ``stats``."""
    return _DISPATCHERS.get((strat.code_version, strat.py_step.__module__, which))


def _loaded(fn: Any, args: tuple[object, ...]) -> Callable[..., int]:
    """Load the kernel ``fn``'s machine code for these arguments from Numba's cache, or
    compile it, before it runs: what fails here is never the step running. Returns it
    (its entry point, which takes arguments of these types only). A damaged
    cache (an index or data file truncated or garbled: Numba's unpickling raised, exit 3
    on every command, QA 2026-12-07) is removed, and the kernel compiled anew, once."""
    from numba.core.errors import NumbaError

    sig = tuple(fn.typeof_pyval(a) for a in args)
    try:
        return fn.compile(sig)
    except NumbaError:
        raise  # the step's code (its own words: _compile_error), or a kernel needing NRT
    except Exception as e:  # noqa: BLE001 - the cache's, said below if it stays
        first = e
    where = _forget_cache(fn)
    try:
        return fn.compile(sig)
    except NumbaError:
        raise
    except Exception as e:  # noqa: BLE001 - the machine's, said with its fix
        raise SetupError(
            f"a compiled kernel could not be loaded from Numba's cache ({where}): "
            f"{type(first).__name__}: {first}; compiling it again failed too: "
            f"{type(e).__name__}: {e}. Fix: delete that folder (NUMBA_CACHE_DIR says where "
            "it is), or set NUMBA_CACHE_DIR to another one"
        ) from e


def _forget_cache(fn: Any) -> str:
    """Remove the cache files of the kernel ``fn`` (its index and data files); returns
    the cache folder (or what is known of it)."""
    try:
        folder = Path(fn._cache._cache_path)
        base = fn._cache._cache_file._index_name[: -len(".nbi")]
    except AttributeError:  # another Numba's cache: nothing removed
        return os.environ.get("NUMBA_CACHE_DIR") or "Numba's cache"
    for f in folder.glob(f"{glob.escape(base)}.*"):
        with contextlib.suppress(OSError):
            f.unlink()
    return str(folder)


def _resolve(strat: Strategy, which: str) -> Callable[..., int]:
    """The strategy's kernel `which` once compiled; before that, `_call` for it."""
    fn = _RESOLVED.get((strat.code_version, strat.py_step.__module__, which))
    return fn if fn is not None else functools.partial(_call, strat, which)


def _compile_error(strat: Strategy, e: Exception) -> StrategyError:
    return StrategyError(
        f"strategy {strat.name!r}: its step does not compile with Numba "
        "(signature (p, s, o, h, l, c, v, i[, t]) -> -1, 0 or 1; functions it calls must be "
        f"decorated with @numba.njit; it may use numpy and math, not Python objects):\n"
        + numba_said(str(e))
    )


def numba_said(text: str) -> str:
    """What of Numba's compile error concerns the user's code: its errors (each once) and
    the places in their files, without Numba's pipeline lines ("During: ...") or its
    excerpt of incbt's generated kernel, which the error pointed at instead of the
    user's file (16-38 lines: QA 2026-12-05)."""
    m = re.search(r">>> float\((.*)\)\s*$", text, re.M)
    if m:  # the kernel's float(step(...)): the step returns what is not a number
        got = m.group(1)
        hint = (
            "a path through the step returns nothing"
            if got.startswith("OptionalType") or got == "none"
            else f"the step returns {got}"
        )
        return f"{hint}: a step returns a number, -1, 0 or 1, on every path"
    lines = text.splitlines()
    if "Cannot modify readonly array" in text:  # Numba's 17 lines of overloads (QA)
        hint = (
            "the step writes to p, its parameters, which are read-only"
            if "readonly parameter_slots" in text
            else "the step writes to an array that is read-only in it (a global array is a "
            "constant to Numba; the bars are read-only)"
        )
        where: list[str] = []
        for k, ln in enumerate(lines):
            if ln.strip().startswith("File ") and "incbt_kernels" not in ln:
                where = [ln]  # the place in the user's file, and its lines
                for nxt in lines[k + 1 :]:
                    if not nxt.strip() or nxt.strip().startswith(("During:", "File ")):
                        break
                    where.append(nxt)
        return "\n".join(
            [f"{hint}: keep what changes from bar to bar in a state slot (s[k])", *where]
        )
    out: list[str] = []
    skip = 0
    for k, ln in enumerate(lines):
        s = ln.strip()
        if skip:
            skip -= 1
            continue
        if not s or s.startswith(("Failed in nopython", "During:", "<source elided>")):
            continue
        if s.startswith("File ") and "incbt_kernels" in s:  # the generated kernel
            skip = sum(1 for _ in itertools.takewhile(lambda x: x.strip(), lines[k + 1 :]))
            continue
        if ln not in out:
            out.append(ln)
    return "\n".join(out) if out else text


def load_kernel(strat: Strategy, row: np.ndarray) -> str | None:
    """Load the strategy's run kernel (compiled, or read from Numba's cache) by running
    it over two bars (1.0 each) with the parameter row ``row``: raises what that raises
    (a :class:`StrategyError` where the step does not compile); returns why the step
    failed over those bars (None: it did not)."""
    ts, bars = np.arange(2, dtype=np.int64), np.ones(2)
    ex = np.array([[1.0, 0.0, 0.0]])
    res = run_segment(strat, row[None, :], ex, ts, bars, bars, bars, bars, bars, 0,
                      np.array([2]), initial_state(strat, 1))  # fmt: skip
    error: str | None = res.errors[0]
    return error


def preload(work: list[tuple[Strategy, np.ndarray]]) -> threading.Thread | None:
    """Load each strategy's run kernel now, on a thread of its own (None: every one is
    loaded already).

    ``work``: (strategy, a parameter row of one of its runs) pairs. A kernel's first
    call in a process costs ~0.3 s (Numba's import, then the compiled code from its
    cache, or a compile), which a command that ingests and plans first (``incbt
    update``) can spend beside that work instead of after it. Each kernel is loaded by
    running it over two bars; a failure is left for the real call to report (the
    same error, in its context).
    """

    with _LOCK:  # a kernel loading already, or loaded, is not loaded again
        todo = []
        for strat, row in work:
            key = (strat.code_version, strat.py_step.__module__, "run")
            if key not in _RESOLVED and key not in _PRELOADING:
                _PRELOADING.add(key)
                todo.append((key, strat, row))
    if not todo:
        return None

    def load() -> None:
        for key, strat, row in todo:
            with contextlib.suppress(Exception):
                load_kernel(strat, row)
            _PRELOADING.discard(key)
        # and the metrics' fold, which a command's first commit calls (~7 ms to load)
        from incbt.results.metrics import fold_portfolio

        with contextlib.suppress(Exception):
            fold_portfolio(np.zeros(2), 1.0)

    t = threading.Thread(target=load, name="incbt-kernels", daemon=True)
    t.start()
    _PRELOADERS.append(t)
    return t


_PRELOADERS: list[threading.Thread] = []


def settle() -> None:
    """Wait for every preload thread to end (a process about to fork: a child must not
    inherit a lock such a thread holds, nor a kernel half loaded)."""
    while _PRELOADERS:
        _PRELOADERS.pop().join()


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
    # for a set with an error, the bar (an index into the loaded arrays) it failed at:
    # where its step raised or gave a bad signal, the last bar of the day whose results
    # overflowed (None: no error, or not known)
    error_bars: list[int | None] | None = field(default=None, init=False)

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
    if not arr.flags.writeable:  # writable, as the kernels' one signature takes it
        arr = arr.copy()
    return arr


_F8 = np.dtype(np.float64)
_BAR_NAMES = ("open", "high", "low", "close", "volume")


def _read_only(a: np.ndarray) -> np.ndarray:
    """``a``, or a read-only view of it: the kernels' one signature takes bars read-only."""
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _bars(ts: object, cols: tuple[object, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """ts as int64 and the columns (open, high, low, close, volume) as float64, all
    read-only and C-contiguous, of ts's length: one kernel signature (Numba compiles one
    per array type: until 2026-12-04 a writable ts, as read from files, and a read-only
    one, as from Arrow, compiled two), and a step cannot write to bars."""
    t = np.ascontiguousarray(ts, dtype=np.int64)
    if t.ndim != 1:
        raise StrategyError(f"ts must be 1-D; got shape {t.shape}")
    t = _read_only(t)
    shape = t.shape
    out = []
    for name, a in zip(_BAR_NAMES, cols, strict=True):
        if type(a) is np.ndarray and a.dtype == _F8 and a.flags.c_contiguous:
            arr = a  # as loaded: no conversion to call
        else:
            arr = np.ascontiguousarray(a, dtype=np.float64)
        if arr.shape != shape:
            raise StrategyError(f"{name} has shape {arr.shape}; ts has {shape}")
        out.append(_read_only(arr))
    return t, out


def _days(day_ends: object) -> np.ndarray:
    """day_ends as the kernels take them: read-only int64 (one kernel signature). The
    kernel checks that they fit the bars before it reads any (see `_days_error`)."""
    return _read_only(np.ascontiguousarray(day_ends, dtype=np.int64).reshape(-1))


def _days_error(de: np.ndarray, start: int, n: int) -> StrategyError | None:
    """Why day_ends do not fit bars [start, n), or None: the kernel's test, with words."""
    if start == n:
        if de.size:
            return StrategyError("day_ends must be empty when there is no bar after start")
        return None
    if (
        de.size == 0
        or int(de[-1]) != n
        or int(de[0]) <= start
        or (de.size > 1 and bool((de[1:] <= de[:-1]).any()))
    ):
        return StrategyError(
            f"day_ends must be strictly increasing exclusive ends of days in ({start}, {n}], "
            f"ending at {n}; got {de[:5].tolist()}{'...' if de.size > 5 else ''}"
        )
    return None


_WARMUPS: dict[tuple[str, bytes], list[int]] = {}


def _warmups(strat: Strategy, p: np.ndarray) -> list[int]:
    """Validate each params row of `p` and return their warm-ups; memoised per block, as
    every segment of a run asks again."""
    key = (strat.code_version, p.tobytes())
    out = _WARMUPS.get(key)
    if out is None:
        out = []
        for k, row in enumerate(p.tolist()):
            given = {spec.name: float(x) for spec, x in zip(strat.params, row, strict=True)}
            try:
                params_from_dict(strat, given)
            except StrategyError as e:
                raise StrategyError(f"parameter set {k}: {e}") from None
            out.append(strat.warmup(given))
        if len(_WARMUPS) > 10_000:
            _WARMUPS.clear()
        _WARMUPS[key] = out
    return out


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


# raised through, never recorded as the strategy failing: its own checks, the machine's
# (SetupError), and memory (QA 2026-12-07: an allocation failing in a step would have
# been recorded as the strategy failing, and the pair's results dropped until a day it
# reads changes)
_NOT_THE_STEPS = (StrategyError, SetupError, MemoryError)


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
    t, cols = _bars(ts, (open, high, low, close, volume))
    n = int(t.shape[0])
    start = int(start)
    if not 0 <= start <= n:
        raise StrategyError(f"start = {start} is outside the loaded bars [0, {n}]")
    de = _days(day_ends)
    _check_exec(ex)
    warm = _warmups(strat, p)
    if n_sets and start < max(warm):  # a set needs bars before start, unless its run has
        seen = st_in[:, BARS].tolist()  # not seen that many yet
        for k in range(n_sets):
            need = min(warm[k], int(seen[k]))
            if start < need:
                raise StrategyError(
                    f"strategy {strat.name!r}, parameter set {k} "
                    f"({params_to_dict(strat, p[k])}) needs {need} warm-up bars before "
                    f"start; got {start}: load more history"
                )
    if n_sets == 0:
        if (bad := _days_error(de, start, n)) is not None:
            raise bad
        return _assemble([], 0, width, de.size, t, 0, [], st_in)
    cap = _fill_capacity(strat, (n - start) * n_sets)
    run = _resolve(strat, "run")
    try:
        res, bad_bar, bad_val = _run_raw(strat, run, p, ex, t, cols, start, de, st_in, cap)
        off = _first_not_finite(res)
        if max(bad_bar) < 0 and max(off) < 0:  # the common case: no set failed
            res.errors = [None] * n_sets
            return res
        parts = [(np.arange(n_sets), res)]
        errors: list[str | None] = [
            _signal_error(strat, p, t, bad_bar, bad_val, k)
            or _not_finite_error(strat, p, ex, t, de, res, off, k)
            for k in range(n_sets)
        ]
        at = [_error_bar(bad_bar, off, de, k) for k in range(n_sets)]
    except _NOT_THE_STEPS:
        raise
    except Exception:
        # a step raised: find out which sets, keep the others (each set is independent)
        parts, errors, at = [], [], []
        for k in range(n_sets):
            try:
                one, bad_bar, bad_val = _run_raw(
                    strat, run, p[k : k + 1], ex[k : k + 1], t, cols, start, de,
                    st_in[k : k + 1], cap,
                )  # fmt: skip
            except _NOT_THE_STEPS:
                raise
            except Exception as e:  # noqa: BLE001 - reported per set, not swallowed
                one_set = (p[k : k + 1], ex[k : k + 1], t, cols, start, de, st_in[k : k + 1])
                bar = _raising_bar(strat, run, *one_set)
                errors.append(
                    f"strategy {strat.name!r}, parameter set {k} ({params_to_dict(strat, p[k])}): "
                    f"the step raised {type(e).__name__} at bar {bar} ({_utc(t, bar)}): {e}"
                    + _step_at(strat)
                )
                at.append(bar)
                continue
            parts.append((np.array([k]), one))
            off1 = _first_not_finite(one)
            errors.append(
                _signal_error(strat, p[k : k + 1], t, bad_bar, bad_val, 0, k)
                or _not_finite_error(strat, p[k : k + 1], ex[k : k + 1], t, de, one, off1, 0, k)
            )
            at.append(_error_bar(bad_bar, off1, de, 0))
    out = _assemble(parts, n_sets, width, de.size, t, (n - start) * n_sets, errors, st_in)
    out.error_bars = [b if e is not None else None for b, e in zip(at, errors, strict=True)]
    return out


def _error_bar(bad_bar: list[int], off: list[int], de: np.ndarray, row: int) -> int | None:
    """The bar set ``row`` failed at: its bad signal's, or the last of the day its results
    overflowed (:func:`_signal_error`, :func:`_not_finite_error`); None: neither."""
    if bad_bar[row] >= 0:
        return int(bad_bar[row])
    if off[row] >= 0:
        return int(de[off[row]]) - 1
    return None


_FILLS = ("fill_set", "fill_bar", "fill_ts", "fill_qty", "fill_price", "fill_fee")
_DAILY = ("equity", "pnl", "pos", "fees", "turnover", "fills")
_SCRATCH = threading.local()


def _fill_buffers(cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-thread scratch buffers for fills, reused across calls (fresh memory is slow to
    touch), with room for at least `cap` fills: (2, room) int64 sets and bars, (3, room)
    float64 qty, price and fee."""
    bufs = getattr(_SCRATCH, "fills", None)
    if bufs is None or bufs[0].shape[1] < cap:
        size = max(cap, 4096)
        bufs = (np.empty((2, size), dtype=np.int64), np.empty((3, size)))
        _SCRATCH.fills = bufs
    return bufs


def _run_raw(
    strat: Strategy,
    run: Callable[..., int],
    p: np.ndarray,
    ex: np.ndarray,
    t: np.ndarray,
    cols: list[np.ndarray],
    start: int,
    de: np.ndarray,
    st_in: np.ndarray,
    cap: int,
) -> tuple[SegmentResult, list[int], np.ndarray]:
    """One kernel call (retried once with the exact fill capacity if it overflowed): its
    result (errors unset), each set's bar of a bad signal (-1: none) and that signal.

    ``cols``: the bars' open, high, low, close, volume."""
    n_sets, width = st_in.shape
    n_days = de.shape[0]
    bar_steps = (t.shape[0] - start) * n_sets
    while True:
        st = st_in.copy()
        block = np.empty((5, n_sets, n_days))  # one allocation for the float daily outputs
        fills = np.empty((n_sets, n_days), dtype=np.int64)
        snaps = np.empty((n_sets, n_days, width))
        f_int, f_flt = _fill_buffers(cap)
        cap = f_int.shape[1]  # the kernel fills the whole room
        counts = np.empty((2, n_sets), dtype=np.int64)  # fills per set; bar of a bad signal
        bad_val = np.empty(n_sets)  # a bad signal's value, where counts[1] >= 0
        total = run(p, ex, t, *cols, np.int64(start), de, st,
                    block, fills, snaps, f_int, f_flt, counts, bad_val)  # fmt: skip
        if total < 0:  # day_ends do not fit the bars: nothing was read
            bad = _days_error(de, start, t.shape[0])
            assert bad is not None, "the kernel and _days_error disagree on day_ends"
            raise bad
        _note_fills(strat, bar_steps, total)
        if total <= cap:
            break
        cap = total
    equity, pnl, pos, fees, turnover = block
    f_set, f_bar = f_int[:, :total].copy()  # one copy of each block, viewed by row
    f_qty, f_px, f_fee = f_flt[:, :total].copy()
    res = SegmentResult(equity, pnl, pos, fees, fills, turnover, snaps,
                        f_set, f_bar, t[f_bar],  # gathered here: a store in the kernel cost more
                        f_qty, f_px, f_fee, st, bar_steps, [])  # fmt: skip
    return res, counts[1].tolist(), bad_val


def _step_at(strat: Strategy) -> str:
    """Where a user's step is defined, as an error of it says it (Numba's compiled code
    names no line of a raise: QA 2026-12-06, "name the file and line"); "" for a
    built-in's."""
    code = getattr(strat.py_step, "__code__", None)
    if code is None or strat.py_step.__module__.startswith("incbt."):
        return ""
    return f" (the step defined at {os.path.basename(code.co_filename)}, line {def_line(code)})"


def def_line(code: types.CodeType) -> int:
    """The line of a function's ``def`` (``co_firstlineno`` is its first decorator's,
    which read as where the error was: QA 2026-12-06)."""
    import linecache

    for k in range(code.co_firstlineno, code.co_firstlineno + 200):
        line = linecache.getline(code.co_filename, k).lstrip()
        if not line:
            if not linecache.getline(code.co_filename, k + 1):
                break
            continue
        if line.startswith(("def ", "async def ")):
            return k
    return code.co_firstlineno


def _utc(t: np.ndarray, bar: int) -> str:
    """Bar ``bar``'s time, as errors say it; the two bars :func:`load_kernel` runs a step
    over (times 0 and 1 ns: no stored bar is that old) have none to say (QA 2026-12-06:
    `strategies --check` said "1970-01-01 00:00:00 UTC")."""
    if int(t[bar]) < _CHECK_BARS_BEFORE:
        return "of the check's two bars of 1.0, no real time"
    return np.datetime64(int(t[bar]), "ns").astype(str)[:19].replace("T", " ") + " UTC"


_CHECK_BARS_BEFORE = 10**9  # ns: 1970-01-01 00:00:01 UTC


def _raising_bar(
    strat: Strategy,
    run: Callable[..., int],
    p: np.ndarray,
    ex: np.ndarray,
    t: np.ndarray,
    cols: list[np.ndarray],
    start: int,
    de: np.ndarray,
    st_in: np.ndarray,
) -> int:
    """The bar at which the step raises for the one parameter set ``p`` (it does over
    the bars to the end): the first prefix of the bars that raises, by bisection. The
    step sees the same bars and state on a prefix (nothing after bar i reaches it), so
    a prefix raises from that bar on. Only on failure: ~log2(bars) runs of one set."""
    lo, hi = start, t.shape[0]  # bars [start, lo) run clean; bars [start, hi) raise
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ends = np.append(de[de < mid], np.int64(mid))
        try:
            _run_raw(strat, run, p, ex, t[:mid], [c[:mid] for c in cols], start, ends,
                     st_in, 16)  # fmt: skip
        except _NOT_THE_STEPS:
            raise
        except Exception:  # noqa: BLE001 - the failure being located
            hi = mid
        else:
            lo = mid
    return hi - 1


def _first_not_finite(res: SegmentResult) -> list[int]:
    """Each set's first day whose daily results are not all finite numbers (-1: none)."""
    days = res.equity.shape[1]
    # the common case in one reduction (~1 us: this runs once a call): a position, fee or
    # turnover that overflows makes equity inf or NaN, and so its sum (a sum of finite
    # equities that overflows is looked at below, and passes)
    if not days or math.isfinite(np.add.reduce(res.equity, axis=None)):
        return [-1] * res.equity.shape[0]
    bad = ~np.isfinite(res.equity) | ~np.isfinite(res.pos) | ~np.isfinite(res.fees)
    bad |= ~np.isfinite(res.turnover)
    first = np.where(bad.any(axis=1), bad.argmax(axis=1), -1)
    return [int(x) for x in first]


def _not_finite_error(
    strat: Strategy,
    p: np.ndarray,
    ex: np.ndarray,
    t: np.ndarray,
    de: np.ndarray,
    res: SegmentResult,
    off: list[int],
    row: int,
    k: int | None = None,
) -> str | None:
    """A set whose results overflowed (QA 2026-12-06: a notional of 1e308, or a price of
    1e-320, gave NaN and inf pnl, stored as results, with a Sharpe of 0)."""
    day = off[row]
    if day < 0:
        return None
    k = row if k is None else k
    bar = int(de[day]) - 1
    return (
        f"strategy {strat.name!r}, parameter set {k} ({params_to_dict(strat, p[row])}): "
        f"its results are not finite numbers on the day whose last bar is at {_utc(t, bar)} "
        f"(equity {float(res.equity[row, day])!r}, position {float(res.pos[row, day])!r}): a "
        f"position of notional {float(ex[row, 0]):g} over a price overflowed. Fix: check "
        "the bars' prices that day (too near 0?) or give a smaller notional"
    )


def _signal_error(
    strat: Strategy,
    p: np.ndarray,
    t: np.ndarray,
    bad_bar: list[int],
    bad_val: np.ndarray,
    row: int,
    k: int | None = None,
) -> str | None:
    bar = bad_bar[row]
    if bar < 0:
        return None
    k = row if k is None else k
    return (
        f"strategy {strat.name!r}, parameter set {k} ({params_to_dict(strat, p[row])}): "
        f"the step returned signal {float(bad_val[row])!r} at bar {bar} ({_utc(t, bar)}); "
        f"{BAD_SIGNAL}"
    )


def _assemble(
    parts: list[tuple[np.ndarray, SegmentResult]],
    n_sets: int,
    width: int,
    n_days: int,
    t: np.ndarray,
    bars_processed: int,
    errors: list[str | None],
    state_in: np.ndarray,
) -> SegmentResult:
    """Merge kernel results (each for the sets `owners`) into one, in set order; a failed
    set's rows are NaN, it has no fills and its state is its input state."""
    daily = {key: np.full((n_sets, n_days), np.nan) for key in _DAILY[:-1]}
    daily["fills"] = np.zeros((n_sets, n_days), dtype=np.int64)
    snaps = np.full((n_sets, n_days, width), np.nan)
    state = state_in.copy()
    for owners, part in parts:
        for row, k in enumerate(owners.tolist()):
            if errors[k] is not None:
                continue
            for key, out in daily.items():
                out[k] = getattr(part, key)[row]
            snaps[k] = part.snapshots[row]
            state[k] = part.state[row]
    # kernel fills are in set order and a set with a signal error left none; the
    # parts hold disjoint sets in increasing order, so concatenating keeps set order
    fills = {
        key: np.concatenate([
            owners[part.fill_set] if key == "fill_set" else getattr(part, key)
            for owners, part in parts
        ]) if parts else np.empty(0, dtype=np.int64 if key in _FILLS[:3] else np.float64)
        for key in _FILLS
    }  # fmt: skip
    return SegmentResult(
        **daily,
        snapshots=snaps,
        **fills,
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
    before `end` (fewer if fewer are loaded); the slot `strat.signal_state` names,
    if any, then holds the engine's signal from `state` (the base run's). `ts`: the
    bars' timestamps, needed by a step that reads them (`t`). Returns a new (n_sets, width) array.
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
    t, cols = _bars(ts, (open, high, low, close, volume))
    n = cols[3].shape[0]
    end = int(end)
    if not 0 <= end <= n:
        raise StrategyError(f"end = {end} is outside the loaded bars [0, {n}]")
    first = np.array([max(0, end - w) for w in _warmups(strat, p)], np.int64)
    sstate = np.empty((n_sets, len(strat.state_names)))
    sstate[:] = np.asarray(strat.state_init, dtype=np.float64)
    if n_sets:
        try:
            _call(strat, "replay", p, t, *cols, first, np.int64(end), sstate)
        except _NOT_THE_STEPS:
            raise
        except Exception as e:
            raise StrategyError(
                f"strategy {strat.name!r}: the step raised {type(e).__name__} "
                f"while replaying the warm-up: {e}"
            ) from e
    st[:, ENGINE_WIDTH:] = sstate
    if strat.signal_state is not None:  # the run's previous signal: the base run's
        st[:, ENGINE_WIDTH + strat.state_names.index(strat.signal_state)] = st[:, SIGNAL]
    return st
