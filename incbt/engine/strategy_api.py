"""Defining strategies: parameters, state, warm-up, and the compiled step.

A strategy is a *step function* compiled by Numba and a little metadata::

    import numpy as np
    from incbt.engine import Param, strategy

    @strategy(
        params={"n": Param(int, default=20, min=2, help="EMA length in bars")},
        state=("seen", "ema"),
        warmup=lambda p: 0,
    )
    def ema_trend(p, s, o, h, l, c, v, i):
        '''Long above the EMA of closes, short below it.'''
        n = int(p[0])                 # parameters, in declaration order, as float64
        if s[0] == 0.0:
            s[1] = c[i]               # seed the EMA with the first close
        else:
            s[1] += 2.0 / (n + 1.0) * (c[i] - s[1])
        s[0] += 1.0                   # closes seen since the run started
        if s[0] < n:
            return 0
        return 1 if c[i] > s[1] else -1

The step is called once per bar `i`, in time order, with

- `p`: the parameter set, a float64 array in the order of `params` (int
  parameters hold integral values: use `int(p[j])`);
- `s`: the strategy's state, a float64 array in the order of `state`, which
  the step updates in place. It starts at 0.0 (or at the values given by
  passing `state` as a mapping of name to initial value), and it is all that
  is carried from one bar to the next: keep counters and running values here,
  never in globals;
- `o, h, l, c, v`: open, high, low, close, volume of the loaded bars up to
  the current one, bars `[0, i]`: reading a later bar (look-ahead) or a
  negative index raises IndexError, which fails that parameter set; `len(c)`
  is `i + 1`, and slices stop at bar `i`;
- `i`: the index of the current bar;
- optionally `t`, if the step takes a 9th argument: the bars' timestamps
  (int64 nanoseconds since the epoch, UTC), e.g. to trade by time of day.
  `t[i] // 60_000_000_000 % 1440` is the bar's minute of the UTC day. It
  holds bars `[0, i]` too.

It returns the signal: -1 (short), 0 (flat) or +1 (long). Any other value is
reported as an error for that parameter set.

Rules that keep results exact when a run is resumed from a snapshot:

- read bars `j` with `i - warmup(p) <= j <= i` only, and only once your own
  counter in `s` says that the run has seen them: a run starts with no history
  (bars before its start date are never seen), and a resumed segment re-reads
  exactly `warmup(p)` bars before its first bar;
- keep everything else in `s`; use float64 arithmetic in a fixed order;
- do not allocate arrays inside the step (slices and views are fine).

`warmup` is an int or a function of the parameter dict giving how many bars
before a segment the step may read; a fork (a run branching from another with
new parameters) rebuilds `s` by replaying that many bars from a fresh state.
`signal_state` names the slot where the step keeps its previous signal, if it
has one (an "otherwise hold" rule): a fork then sets it to the base run's
signal after the replay.
`check` is an optional function of the parameter dict returning an error
message (or None) for rules between parameters, e.g. fast < slow.

The strategy's `code_version` hashes the engine version, the step's source as
code (with its decorator; comments, layout, docstrings and parameters' `help=`
texts left out) and the user code it reaches: the functions it calls
(which must be `@numba.njit`), from its own file or from helper modules next
to it (`load_strategies` lets the file import them), and the constants they
read, which Numba freezes at compile time (numbers, strings, tuples of them
or of such tuples, arrays): their values, so also default arguments and the
state slots' first values given to the decorator by a name. Edit any of them
and the runs using the strategy are recomputed. (A helper module is imported once per process:
restart to pick up an edit of it. Each file gets the helper modules of its own folder: two
folders may each have their `helpers.py`.)
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import inspect
import io
import marshal
import math
import numbers
import os
import re
import sys
import sysconfig
import textwrap
import tokenize
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from incbt.errors import IMPORTING_STRATEGIES
from incbt.errors import StrategyError as AnyStrategyError

from ._version import ENGINE_VERSION
from .errors import StrategyError

__all__ = [
    "EXEC_PARAMS",
    "Param",
    "ParamSpec",
    "Strategy",
    "exec_params_from_dict",
    "load_strategies",
    "params_from_dict",
    "params_to_dict",
    "strategy",
]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_EXACT_INT = 2**53  # float64 holds every integer up to here exactly


def _fmt_range(lo: float | None, hi: float | None) -> str:
    def num(x: float) -> str:  # 1e+15, not 1000000000000000.0 (QA 2026-12-06)
        return repr(x) if abs(x) < 1e6 else f"{x:g}"

    left = "-inf" if lo is None else num(lo)
    right = "inf" if hi is None else num(hi)
    return f"[{left}, {right}]"


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a strategy: its name, type (int or float), default and inclusive bounds."""

    name: str
    type: type
    default: int | float
    min: int | float | None = None
    max: int | float | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise StrategyError(
                f"parameter name {self.name!r} is not an ASCII identifier (letters a-z, A-Z, "
                "digits and _, not first a digit)"
            )
        if self.type not in (int, float):
            raise StrategyError(
                f"parameter {self.name!r}: type must be int or float, got {self.type!r}"
            )
        for bound in ("min", "max"):
            b = getattr(self, bound)
            if b is not None and not _is_real(b):
                raise StrategyError(f"parameter {self.name!r}: {bound}={b!r} is not a number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise StrategyError(f"parameter {self.name!r}: min {self.min!r} > max {self.max!r}")

    @property
    def range_text(self) -> str:
        """The valid range, e.g. "[1, inf]"."""
        return _fmt_range(self.min, self.max)

    def describe(self) -> str:
        """One line: name, type, default, range and help."""
        text = f"{self.name} ({self.type.__name__}, default {self.default!r}, {self.range_text})"
        return f"{text}: {self.help}" if self.help else text


@dataclass(frozen=True)
class Param:
    """A parameter declaration for the `strategy` decorator; its name is the dict key."""

    type: type
    default: int | float = None  # type: ignore[assignment]  # required: said below
    min: int | float | None = None
    max: int | float | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.default is None:  # a TypeError of the dataclass's before (QA 2026-12-07)
            kind = getattr(self.type, "__name__", repr(self.type))
            raise StrategyError(
                f"Param({kind}) needs a default, which a run that does not give the "
                f"parameter takes: Param({kind}, DEFAULT, min=..., max=..., help=...)"
            )
        for f in ("default", "min", "max"):  # NumPy's scalars as the numbers they are (QA
            v = getattr(self, f)  # 2026-12-07: "[np.float64(1.5), inf]" in messages)
            if isinstance(v, np.generic):
                object.__setattr__(self, f, v.item())

    def spec(self, name: str) -> ParamSpec:
        return ParamSpec(name, self.type, self.default, self.min, self.max, self.help)


def _is_real(x: Any) -> bool:
    if type(x) is int or type(x) is float:  # most values: no ABC check (a sweep's 100,000)
        return True
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def shown_value(value: Any) -> str:
    """A parameter's value as a message shows it: its repr, cut past 40 characters
    (10**400 said in 401 digits said nothing more)."""
    shown = repr(value)
    if len(shown) > 40:
        shown = f"{shown[:20]}...{shown[-8:]} ({len(shown)} characters)"
    return shown


def _coerce(owner: str, spec: ParamSpec, value: Any) -> int | float:
    """`value` as spec.type, or a StrategyError naming owner, parameter, value and range."""
    given = value

    def where() -> str:  # said only on an error: a valid value costs no repr
        return f"{owner}: parameter {spec.name!r} = {shown_value(given)}"

    if isinstance(value, str):
        text = value.strip()
        try:
            if "_" in text:  # int("20_0") is 200, which no one typing it meant (QA)
                raise ValueError(text)
            value = int(text) if spec.type is int else float(text)
        except ValueError:
            raise StrategyError(
                f"{where()} is not {'an int' if spec.type is int else 'a number'}"
            ) from None
    if not _is_real(value):
        kind = "an int" if spec.type is int else "a number"
        raise StrategyError(f"{where()} has type {type(value).__name__}; expected {kind}")
    try:
        fval = float(value)
    except OverflowError:  # an int past a float's range (QA 2026-12-06: a traceback)
        bounded = spec.min is not None or spec.max is not None
        raise StrategyError(
            f"{where()} is too large"
            + (f"; valid range {spec.range_text}" if bounded else " (past a float's range)")
        ) from None
    if fval == 0.0:
        # -0.0 equals 0.0 but hashes as other text in a run id: k=-0 was a second run with
        # the results of k=0 (QA 2026-12-05), so it is made 0.0 here, where every value passes.
        fval = 0.0
    if not math.isfinite(fval):
        bounded = spec.min is not None or spec.max is not None  # [-inf, inf] said nothing
        raise StrategyError(
            f"{where()} is not finite"
            # "[0.0, inf]" read as if inf were valid (QA 2026-12-06)
            + (f"; valid: finite values in {spec.range_text}" if bounded else "")
        )
    if spec.type is int:
        if fval != math.floor(fval):
            raise StrategyError(f"{where()} is not an integer; valid range {spec.range_text}")
        # the value itself: float(2**53 + 1) is 2**53, which passed (QA 2026-12-06)
        whole_value = int(value) if isinstance(value, numbers.Integral) else fval
        if abs(fval) > _MAX_EXACT_INT or abs(whole_value) > _MAX_EXACT_INT:
            raise StrategyError(f"{where()} is too large (|value| must be <= 2**53)")
        out: int | float = int(value)
    else:
        out = fval
    if (spec.min is not None and out < spec.min) or (spec.max is not None and out > spec.max):
        raise StrategyError(f"{where()} is out of range; valid range {spec.range_text}")
    return out


def _named_arguments(fn: Callable[..., Any]) -> set[str]:
    """The keyword arguments of the function's decorators that are not literals in its
    source (``state={"seen": INIT}``: state); every one where the source is not at
    hand."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return {"state", "warmup"}
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for dec in node.decorator_list:
                for kw in dec.keywords if isinstance(dec, ast.Call) else ():
                    try:
                        ast.literal_eval(kw.value)
                    except ValueError:
                        if kw.arg:
                            out.add(kw.arg)
            break
    return out


def _source(obj: Callable[..., Any]) -> str:
    """The source of a function as code (:func:`_as_code`), or a hash of its bytecode
    when the source is unavailable."""
    try:
        return _as_code(inspect.getsource(obj))
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is None:
            return repr(obj)
        return "bytecode:" + hashlib.sha256(marshal.dumps(code)).hexdigest()


def _as_code(text: str) -> str:
    """Source text as the code it is: comments, layout, docstrings and the ``help=``
    texts of its decorator's parameters left out, so editing them keeps the code
    version (and the runs' results). Text that does not parse alone (a lambda's line)
    is taken as it is."""
    try:
        tree = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        return _tokens(text)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef):
            continue
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(getattr(first.value, "value", None), str):
            node.body = node.body[1:] or [ast.Pass()]  # its docstring
        for deco in getattr(node, "decorator_list", ()):
            for call in ast.walk(deco):
                if isinstance(call, ast.Call):
                    call.keywords = [
                        k
                        for k in call.keywords
                        if not (k.arg == "help" and isinstance(k.value, ast.Constant))
                    ]
    return ast.unparse(tree)


_LAYOUT = (tokenize.COMMENT, tokenize.NL)  # blocks (NEWLINE, INDENT, DEDENT) are code
_BLOCKS = {tokenize.NEWLINE: ";", tokenize.INDENT: "{", tokenize.DEDENT: "}"}


def _tokens(text: str) -> str:
    """Text that does not parse alone (a lambda's line inside a decorator's call, found
    by review 2026-12-05: ``warmup=lambda p: p["n"])  # ...``) as its tokens without
    comments and layout; text that does not tokenize either, as it is."""
    out: list[str] = []
    try:
        for t in tokenize.generate_tokens(io.StringIO(textwrap.dedent(text)).readline):
            if t.type not in _LAYOUT:
                out.append(_BLOCKS.get(t.type, t.string))
    except tokenize.TokenError:  # brackets not balanced at the end: every token was read
        pass
    except SyntaxError:
        return text
    return " ".join(out) if out else text


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_LIBRARY_DIRS = tuple(
    sorted(
        {
            os.path.realpath(path)
            for key in ("stdlib", "platstdlib", "purelib", "platlib")
            if (path := sysconfig.get_paths().get(key))
        }
    )
)


def _is_user_code(obj: Any) -> bool:
    """True for functions and modules not installed with Python or in site-packages."""
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except TypeError:  # built-in
        return False
    return not os.path.realpath(path).startswith(_LIBRARY_DIRS)


def _is_jitted(obj: Any) -> bool:
    """Whether ``obj`` is a Numba dispatcher (``@numba.njit``). Numba is imported only
    where a step is compiled (``import numba`` costs ~0.2 s; ``incbt status`` and the
    SQL commands never compile): until something imports it, nothing can be jitted."""
    if "numba" not in sys.modules:
        return False
    from numba.core.dispatcher import Dispatcher

    return isinstance(obj, Dispatcher)


def _python(obj: Any) -> Any:
    """A jitted function's Python function; anything else as it is."""
    return obj.py_func if _is_jitted(obj) else obj


def _fingerprint(fn: Callable[..., Any], parts: list[str], seen: set[int]) -> None:
    """Append to `parts` the source of `fn` and of the user code it uses, recursively.

    Followed: functions (plain or jitted) it names, from any module that is not
    installed in site-packages or the standard library, also as `module.function`;
    constants (numbers, strings, tuples, arrays), which Numba freezes at compile time:
    globals, a user module's attributes it names (`cfg.LEVEL`) and the values of the
    enclosing function's variables it uses (a step made by `make(120.0)`). Found
    2026-12-05: the last two were left out, so an edited level kept the old results.
    """
    fn = _python(fn)
    if id(fn) in seen:
        return
    seen.add(id(fn))
    parts.append(f"def {getattr(fn, '__qualname__', '?')}\n{_source(fn)}")
    code = getattr(fn, "__code__", None)
    glb = getattr(fn, "__globals__", None)
    if code is None or glb is None:
        return
    names = sorted(_global_names(code))
    # default values, evaluated where the function is made: `def above(a, b, k=K)`
    # holds K's value, not its name (QA 2026-12-06: an edited K kept the old results)
    for k, val in enumerate(getattr(fn, "__defaults__", None) or ()):
        _value(f"default {k}", val, names, parts, seen)
    for key, val in sorted((getattr(fn, "__kwdefaults__", None) or {}).items()):
        _value(f"default {key}", val, names, parts, seen)
    cells = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        try:
            val = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        _value(f"closure {name}", val, names, parts, seen)
    for name in names:
        if name in glb:
            _value(name, glb[name], names, parts, seen)


_SCALARS = (bool, int, float, complex, str, bytes, type(None), np.generic)


def _value(name: str, val: Any, names: list[str], parts: list[str], seen: set[int]) -> None:
    """What a value the code uses adds to its fingerprint (see :func:`_fingerprint`)."""
    val = _python(val)
    if isinstance(val, types.FunctionType):
        if _is_user_code(val):
            _fingerprint(val, parts, seen)
        else:
            parts.append(f"uses {name} = {val.__module__}.{val.__qualname__}")
    elif isinstance(val, types.ModuleType):
        if _is_user_code(val):  # e.g. `helpers.f(x)`, `cfg.LEVEL`: the attributes it names
            for attr in names:
                member: Any = getattr(val, attr, None)
                if member is None or isinstance(member, types.ModuleType):
                    continue
                _value(f"{name}.{attr}", member, names, parts, seen)
    elif _frozen(val):
        parts.append(f"const {name} = {val!r}")
    elif isinstance(val, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(val).tobytes()).hexdigest()
        parts.append(f"array {name} {val.dtype} {val.shape} {digest}")


def _frozen(val: Any) -> bool:
    """A constant Numba freezes: a scalar, or a tuple of them or of such tuples
    (``LEVELS = ((0.0, 0.001),)``: QA 2026-12-06, nested tuples were left out)."""
    if isinstance(val, _SCALARS):
        return True
    return isinstance(val, tuple) and all(_frozen(x) for x in val)


ErrorModel = Literal["python", "numpy"]  # Numba's, for a step (see Strategy.error_model)


@dataclass(frozen=True, eq=False)
class Strategy:
    """A strategy: compiled step, parameters, state slots, warm-up rule and code version.

    Made by the `strategy` decorator; see the module docstring.
    """

    name: str
    params: tuple[ParamSpec, ...]
    state_names: tuple[str, ...]
    state_init: tuple[float, ...]
    py_step: Callable[..., Any]
    code_version: str
    doc: str = ""
    warmup_rule: Callable[[dict[str, Any]], int] | int = 0
    check: Callable[[dict[str, Any]], str | None] | None = None
    # the bar fields the step reads; the others are passed as zeros (and not loaded)
    reads: tuple[str, ...] = ("open", "high", "low", "close", "volume")
    takes_ts: bool = False  # the step takes a 9th argument: the bars' timestamps
    # Numba's error model for the step: "python" raises ZeroDivisionError (reported for
    # the set), "numpy" divides as IEEE does (x / 0 is inf or nan) without testing the
    # divisor first, for steps whose parameters rule a zero divisor out (the built-ins)
    error_model: ErrorModel = "python"
    # the state slot holding the strategy's previous signal (its "otherwise hold"), or
    # None: a fork sets it to the base run's signal after the warm-up replay
    signal_state: str | None = None

    @property
    def step(self) -> Any:
        """The step compiled by Numba: the user's own ``@numba.njit`` dispatcher, or one
        made on first use (the engine's kernels inline their own copy of it)."""
        step = self.__dict__.get("_step")
        if step is None:
            import numba

            step = numba.njit(nogil=True, error_model=self.error_model)(self.py_step)
            object.__setattr__(self, "_step", step)
        return step

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def defaults(self) -> dict[str, int | float]:
        """The default parameter values."""
        return {p.name: p.default for p in self.params}

    def params_dict(self, values: Mapping[str, Any] | np.ndarray | Iterable[float]) -> dict:
        """Parameters as a dict (int parameters as int), from a dict or a params row."""
        if isinstance(values, Mapping):
            return params_to_dict(self, params_from_dict(self, values))
        return params_to_dict(self, np.asarray(values, dtype=np.float64))

    def warmup(self, params: Mapping[str, Any] | np.ndarray) -> int:
        """Bars before a segment's first bar that the step may read, for these parameters."""
        rule = self.warmup_rule
        given = None if isinstance(rule, int) else self.params_dict(params)
        try:
            n = rule if given is None else rule(given)  # type: ignore[operator]
        except Exception as exc:  # a KeyError from a lambda said nothing of where (QA)
            raise StrategyError(
                f"strategy {self.name!r}: its warmup rule raised {type(exc).__name__}: {exc} "
                f"for the parameters {given}"
            ) from None
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, numbers.Integral) or n < 0:
            raise StrategyError(
                f"strategy {self.name!r}: warmup returned {n!r}"
                + (f" for the parameters {given}" if given is not None else "")
                + "; it must be an int >= 0"
            )
        return int(n)

    def describe(self) -> str:
        """A few lines for humans: name, doc, parameters, state, the bar fields it reads,
        its warm-up at the defaults, and its code version (part of every run's id)."""
        lines = [f"{self.name}: {self.doc.splitlines()[0] if self.doc else ''}".rstrip()]
        lines += [f"  {p.describe()}" for p in self.params]
        lines.append(
            f"  state: {', '.join(self.state_names) or '(none)'}"
            + (
                f" ({self.signal_state}: its previous signal, the base run's in a fork)"
                if self.signal_state
                else ""
            )
        )
        try:
            warm = f"{self.warmup(self.defaults())} bar(s) at the defaults"
        except AnyStrategyError as exc:  # the defaults break a check rule, or the rule raises
            warm = f"not known at the defaults ({exc})"
        lines.append(
            f"  reads: {', '.join(self.reads) or '(no bar field)'}"
            + (", and the bars' timestamps" if self.takes_ts else "")
            + f"; warm-up: {warm}"
            + ("; a rule checks its parameters together" if self.check is not None else "")
        )
        lines.append(f"  code version: {self.code_version[:16]}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        args = ", ".join(self.param_names)
        return f"<Strategy {self.name}({args}) {self.code_version[:12]}>"


def params_from_dict(strat: Strategy, values: Mapping[str, Any] | None = None) -> np.ndarray:
    """Validate a parameter dict and return it as a float64 row in declaration order.

    Missing parameters take their defaults. Raises `StrategyError` for an
    unknown name, a wrong type, a value out of range or a broken cross-parameter rule.
    """
    values = dict(values or {})
    # A command over a sweep checks each point's parameters several times (registering,
    # planning, the sweep's record): ~4 checks a run, 1.6 s of a no-op `sweep --resume`
    # of 16,000 runs. A valid dict is remembered by its names, types and values.
    try:
        key: Any = tuple(sorted((k, type(v), v) for k, v in values.items()))
        hash(key)
    except TypeError:  # a list as a value, names that are not text: checked (and refused)
        key = None
    known_rows = strat.__dict__.get("_valid_rows")
    if known_rows is None:
        known_rows = {}
        object.__setattr__(strat, "_valid_rows", known_rows)
    row = known_rows.get(key) if key is not None else None
    if row is not None:
        return row.copy()
    row = _params_row(strat, values)
    if key is not None:
        if len(known_rows) >= 200_000:
            known_rows.clear()
        known_rows[key] = row.copy()
    return row


def _params_row(strat: Strategy, values: dict[str, Any]) -> np.ndarray:
    owner = f"strategy {strat.name!r}"
    known = {p.name for p in strat.params}
    unknown = sorted(set(values) - known)
    if unknown:
        listing = "; ".join(p.describe() for p in strat.params) or "(none)"
        raise StrategyError(
            f"{owner} has no parameter {unknown[0]!r}; its parameters are: {listing}"
        )
    out: dict[str, int | float] = {}
    for spec in strat.params:
        out[spec.name] = _coerce(owner, spec, values.get(spec.name, spec.default))
    if strat.check is not None:
        shown = ", ".join(f"{k}={v!r}" for k, v in out.items())
        try:
            msg = strat.check(dict(out))
        except Exception as exc:  # QA 2026-12-06: the exception itself, exit 3
            raise StrategyError(
                f"{owner}: its check rule raised {type(exc).__name__}: {exc} for the "
                f"parameters ({shown})"
            ) from None
        if isinstance(msg, bool | np.bool_) and msg:  # a predicate: True for valid ones
            # said "invalid parameters (...): True" (QA 2026-12-06); `bad and "why"` gives
            # False for valid ones, which stays valid
            raise StrategyError(
                f"{owner}: its check rule returned True for the parameters ({shown}); it "
                "must return None (or False) when they are valid, else a text saying why not"
            )
        if msg and not isinstance(msg, str):  # "invalid parameters (n=3): -0.5" (QA)
            raise StrategyError(
                f"{owner}: its check rule returned {msg!r} for the parameters ({shown}); it "
                "must return None (or False) when they are valid, else a text saying why not"
            )
        if msg:
            raise StrategyError(f"{owner}: invalid parameters ({shown}): {msg}")
    return np.array([float(out[p.name]) for p in strat.params], dtype=np.float64)


def params_to_dict(strat: Strategy, row: np.ndarray) -> dict[str, int | float]:
    """The inverse of `params_from_dict`: a params row as a dict (int parameters as int)."""
    row = np.asarray(row, dtype=np.float64)
    if row.shape != (len(strat.params),):
        raise StrategyError(
            f"strategy {strat.name!r} takes {len(strat.params)} parameters "
            f"({', '.join(strat.param_names)}); got an array of shape {row.shape}"
        )
    return {
        p.name: (int(x) if p.type is int else float(x))
        for p, x in zip(strat.params, row.tolist(), strict=True)
    }


MAX_NOTIONAL = 1e15
EXEC_PARAMS: tuple[ParamSpec, ...] = (
    # at most 1e15: 1e308 passed, then every pair's PnL overflowed (QA 2026-12-06)
    ParamSpec("notional", float, 100000.0, 0.0, MAX_NOTIONAL, "currency put on a position"),
    # at most the notional filled: a fee of 1e300 bps overflowed the metrics (Sharpe -0: QA)
    ParamSpec("fee_bps", float, 0.0, 0.0, 10000.0, "fee per fill, bps of |notional filled|"),
    ParamSpec("slippage_bps", float, 0.0, 0.0, 9999.0, "fills at open*(1 +/- bps/1e4)"),
)


def exec_params_from_dict(values: Mapping[str, Any] | None = None) -> np.ndarray:
    """Validate execution parameters; returns float64 [notional, fee_bps, slippage_bps]."""
    values = dict(values or {})
    known = {p.name for p in EXEC_PARAMS}
    unknown = sorted(set(values) - known)
    if unknown:
        raise StrategyError(
            f"unknown execution parameter {unknown[0]!r}; they are: "
            + "; ".join(p.describe() for p in EXEC_PARAMS)
        )
    notional: Any = values.get("notional")
    if _is_real(notional) and float(notional) <= 0:  # said before the range [0, 1e15],
        # which holds 0 (QA 2026-12-06: -5 was told "valid range [0.0, ...]")
        raise StrategyError(
            f"execution: parameter 'notional' = {float(notional)!r} must be > 0 (and at "
            f"most {EXEC_PARAMS[0].max:g})"
        )
    top = EXEC_PARAMS[0].max
    if _is_real(notional) and top is not None and not float(notional) <= top:  # so too
        # large, and NaN (QA 2026-12-07: 1e16, inf and nan were told "[0.0, 1e+15]")
        x = float(notional)
        raise StrategyError(
            f"execution: parameter 'notional' = {x:g} "
            f"{'is out of range' if math.isfinite(x) else 'is not finite'}; valid: more than "
            f"0 and at most {top:g}"
        )
    out = [_coerce("execution", p, values.get(p.name, p.default)) for p in EXEC_PARAMS]
    return np.array(out, dtype=np.float64)


_STEP_ARGS = (8, 9)  # p, s, o, h, l, c, v, i and, optionally, t


def _check_reads(
    sname: str, fn: Callable[..., Any], fields: tuple[str, ...], read_fields: tuple[str, ...]
) -> None:
    """Refuse a step that uses a bar argument its ``reads`` leaves out: it is given zeros
    there, so a step reading ``h[i]`` with reads=("close",) ran on, always long, without
    a word (QA 2026-12-05). The step's own code is looked at (its argument loaded), not
    what helpers it passes the array to do with it."""
    import dis

    code = getattr(fn, "__code__", None)
    if code is None:
        return
    args = code.co_varnames[2 : 2 + len(fields)]  # p, s, then the bars o, h, l, c, v
    used = {
        name
        for ins in dis.get_instructions(code)
        if ins.opname.startswith("LOAD_FAST")
        # Python 3.13's LOAD_FAST_LOAD_FAST loads two: its argval is a pair
        for name in (ins.argval if isinstance(ins.argval, tuple) else (ins.argval,))
        if name in args
    }
    for name, field in zip(args, fields, strict=False):
        if name in used and field not in read_fields:
            raise StrategyError(
                f"strategy {sname!r}: its step uses {name!r} ({field}) but reads= "
                f"{read_fields} leaves {field!r} out (a field not read is given as zeros): "
                f"add {field!r} to reads"
            )


def _make_strategy(
    fn: Callable[..., Any],
    *,
    name: str | None,
    params: Mapping[str, Param | ParamSpec] | Iterable[ParamSpec] | None,
    state: Iterable[str] | Mapping[str, float],
    warmup: Callable[[dict[str, Any]], int] | int,
    check: Callable[[dict[str, Any]], str | None] | None,
    depends: Iterable[Callable[..., Any]],
    reads: Iterable[str] | None = None,
    error_model: ErrorModel = "python",
    signal_state: str | None = None,
) -> Strategy:
    py_fn = _python(fn)
    if not isinstance(py_fn, types.FunctionType):
        raise StrategyError(f"@strategy decorates a function, not {fn!r}")
    sname = name or py_fn.__name__
    if not _NAME_RE.match(sname):
        raise StrategyError(
            f"strategy name {sname!r} must be an ASCII identifier (letters a-z, A-Z, digits "
            "and _, not first a digit): name it with @strategy(name=...)"
        )
    try:
        sig = inspect.signature(py_fn)
    except (TypeError, ValueError):  # pragma: no cover - plain functions have one
        sig = None
    n_args = len(sig.parameters) if sig is not None else 8
    if n_args not in _STEP_ARGS:
        raise StrategyError(
            f"strategy {sname!r}: the step must take 8 arguments (p, s, o, h, l, c, v, i), "
            f"or 9 with the bars' timestamps (p, s, o, h, l, c, v, i, t); "
            f"{py_fn.__name__}{sig} takes {n_args}"
        )
    if params is None:
        specs: tuple[ParamSpec, ...] = ()
    elif isinstance(params, Mapping):
        specs = tuple(
            v if isinstance(v, ParamSpec) and v.name == k else _as_param(sname, k, v).spec(k)
            for k, v in params.items()
        )
    else:
        specs = tuple(params)
        for spec in specs:  # QA 2026-12-06: ("n", int, 3) was an AttributeError
            if not isinstance(spec, ParamSpec):
                raise StrategyError(
                    f"strategy {sname!r}: params holds {spec!r}; give a dict of "
                    'incbt.Param, e.g. params={"n": incbt.Param(int, default=3, min=1)}'
                )
    # declarations refused here, naming the strategy (QA 2026-12-06: a TypeError at the
    # first call, or nothing at all)
    if check is not None and not callable(check):
        raise StrategyError(
            f"strategy {sname!r}: check must be a function of the parameters dict that "
            f"returns None (valid) or why not, not {check!r}"
        )
    if isinstance(depends, str | bytes) or not isinstance(depends, Iterable):
        raise StrategyError(
            f"strategy {sname!r}: depends must be a list of the functions the step calls, "
            f"not {depends!r}"
        )
    not_functions = [d for d in depends if not callable(d)]
    if not_functions:
        raise StrategyError(
            f"strategy {sname!r}: depends holds {not_functions[0]!r}, not a function: list "
            "the functions the step calls (their code is part of its code version)"
        )
    if isinstance(reads, str):
        raise StrategyError(
            f"strategy {sname!r}: reads must be a tuple of bar field names, e.g. reads=({reads!r},)"
        )
    seen_names: set[str] = set()
    for spec in specs:
        if spec.name in seen_names:
            raise StrategyError(f"strategy {sname!r}: parameter {spec.name!r} declared twice")
        if spec.name in ("notional", "fee_bps", "slippage_bps"):  # QA 2026-12-07: a run of
            # fee_bps=3 (-p) that paid --fee-bps 7 was shown as "fee_bps=3.0"
            raise StrategyError(
                f"strategy {sname!r}: parameter {spec.name!r} has the name of an execution "
                "parameter (notional, fee_bps, slippage_bps: --notional, --fee-bps, "
                "--slippage-bps), which the engine applies: give yours another name"
            )
        seen_names.add(spec.name)
        _coerce(f"strategy {sname!r} (default)", spec, spec.default)
    if isinstance(state, Mapping):
        state_names = tuple(state)
        for slot, x in state.items():  # a number each (QA 2026-12-06: "x" was a traceback)
            try:
                finite = _is_real(x) and math.isfinite(float(x))
            except OverflowError:
                finite = False
            if not finite:
                raise StrategyError(
                    f"strategy {sname!r}: state slot {slot!r} starts at {x!r}; give a finite "
                    'number, e.g. state={"seen": 0.0}'
                )
        state_init = tuple(float(x) for x in state.values())
    elif isinstance(state, str):
        raise StrategyError(
            f"strategy {sname!r}: state must be a tuple of names, e.g. state=({state!r},)"
        )
    else:
        state_names = tuple(state)
        state_init = (0.0,) * len(state_names)
    for sn in state_names:
        if not isinstance(sn, str) or not _NAME_RE.match(sn):
            raise StrategyError(f"strategy {sname!r}: state slot name {sn!r} is not an identifier")
    if len(set(state_names)) != len(state_names):
        raise StrategyError(f"strategy {sname!r}: duplicate state slot names {state_names}")
    if not (isinstance(warmup, int) and warmup >= 0) and not callable(warmup):
        raise StrategyError(
            f"strategy {sname!r}: warmup must be an int >= 0 or a function of the params dict"
        )
    fields = ("open", "high", "low", "close", "volume")
    read_fields = fields if reads is None else tuple(f for f in fields if f in set(reads))
    unknown = sorted(set(reads or ()) - set(fields))
    if unknown:
        raise StrategyError(
            f"strategy {sname!r}: reads names unknown bar fields {unknown}; they are {fields}"
        )
    if reads is not None:
        _check_reads(sname, py_fn, fields, read_fields)
    if error_model not in ("python", "numpy"):
        raise StrategyError(
            f"strategy {sname!r}: error_model must be 'python' or 'numpy', not {error_model!r}"
        )
    if signal_state is not None and signal_state not in state_names:
        raise StrategyError(
            f"strategy {sname!r}: signal_state={signal_state!r} names no state slot; "
            f"the slots are {state_names}"
        )
    parts = [f"engine {ENGINE_VERSION}", f"strategy {sname}"]
    if reads is not None:
        parts.append(f"reads {','.join(read_fields)}")
    if error_model != "python":  # a division by zero would give other results
        parts.append(f"error_model {error_model}")
    # the decorator's values as they are, not as written: `state={"seen": INIT}` holds
    # INIT's value (QA 2026-12-06: an edited INIT kept the old results); a state slot's
    # first value and the warm-up a resume replays are part of the results
    # (only where given by a name: written as literals, the source holds them already, and
    # a store's runs keep their code versions, review 2026-12-06)
    named = _named_arguments(py_fn)
    if any(state_init) and "state" in named:
        parts.append(f"state {dict(zip(state_names, state_init, strict=True))!r}")
    if isinstance(warmup, int) and warmup and "warmup" in named:
        parts.append(f"warmup {warmup}")
    if signal_state is not None and "signal_state" in named:  # a fork's results
        parts.append(f"signal_state {signal_state}")
    seen: set[int] = set()
    _fingerprint(py_fn, parts, seen)
    for extra in (warmup, check, *depends):
        if callable(extra) and not isinstance(extra, type):
            _fingerprint(extra, parts, seen)
    code_version = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    strat = Strategy(
        name=sname,
        params=specs,
        state_names=state_names,
        state_init=state_init,
        py_step=py_fn,
        code_version=code_version,
        doc=inspect.getdoc(py_fn) or "",
        warmup_rule=warmup,
        check=check,
        reads=read_fields,
        takes_ts=n_args == 9,
        error_model=error_model,
        signal_state=signal_state,
    )
    if _is_jitted(fn):  # the step the user compiled is the one `step` gives, as before
        object.__setattr__(strat, "_step", fn)
    # its file as it was when this object was made: an object given to the API stands
    # for its file's code only while the file is unchanged (see ``made_from_file_as_is``)
    object.__setattr__(strat, "_file_stamp", file_stamp(inspect.getsourcefile(py_fn)))
    params_from_dict(strat, {})  # the defaults must satisfy the cross-parameter rule
    strat.warmup(strat.defaults())  # and give a valid warm-up
    return strat


def file_stamp(path: str | None) -> tuple[int, int] | None:
    """A file's (modification time in ns, size), None if there is no such file."""
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return None if st is None else (st.st_mtime_ns, st.st_size)


def made_from_file_as_is(strat: Strategy, path: str) -> bool:
    """The file ``path`` is as it was when ``strat`` was made from it (not edited
    since): the object is then the file's code, else the file must be read again."""
    made = strat.__dict__.get("_file_stamp")
    return made is not None and made == file_stamp(path)


def _as_param(sname: str, key: str, v: Any) -> Param:
    if isinstance(v, Param):
        return v
    if isinstance(v, ParamSpec):
        return Param(v.type, v.default, v.min, v.max, v.help)
    if _is_real(v):  # a bare default: the type is the default's
        return Param(int if isinstance(v, numbers.Integral) else float, v)
    raise StrategyError(
        f"strategy {sname!r}: parameter {key!r} must be declared as Param(type, default, ...)"
    )


def strategy(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, Param | ParamSpec] | Iterable[ParamSpec] | None = None,
    state: Iterable[str] | Mapping[str, float] = (),
    warmup: Callable[[dict[str, Any]], int] | int = 0,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    depends: Iterable[Callable[..., Any]] = (),
    reads: Iterable[str] | None = None,
    error_model: ErrorModel = "python",
    signal_state: str | None = None,
) -> Any:
    """Turn a step function into a `Strategy` (usable as `@strategy` or `@strategy(...)`).

    params: name -> Param(type, default, min=, max=, help=), in the order of `p`.
    state: names of the float64 state slots (or name -> initial value).
    warmup: bars before a segment the step may read (int, or function of the params dict).
    check: function of the params dict returning an error message or None.
    depends: extra functions whose source is part of the code version (functions
        of the step's own module that it calls are found automatically).
    reads: the bar fields the step reads (of open, high, low, close, volume;
        default all). Only those are loaded; the others reach the step as zeros.
    error_model: "python" (default): a division by zero raises ZeroDivisionError,
        reported for the set; "numpy": divisions are not tested first (x / 0 gives
        inf or nan), a little faster, for steps whose parameters rule it out.
    signal_state: the name of the state slot in which the step keeps its previous
        signal, for a rule such as "otherwise the previous signal". A fork replays the
        warm-up from a fresh state, which leaves such a slot at what the replay gave
        (0 where the replay is too short to signal); with ``signal_state`` it holds the
        base run's signal instead, as the run's previous signal at D-1 is the base's.
    """

    def wrap(f: Callable[..., Any]) -> Strategy:
        made = _make_strategy(
            f,
            name=name,
            params=params,
            state=state,
            warmup=warmup,
            check=check,
            depends=(
                tuple(depends)
                if isinstance(depends, Iterable) and not isinstance(depends, str | bytes)
                else depends
            ),
            reads=reads,
            error_model=error_model,
            signal_state=signal_state,
        )
        where = defined_in(f)
        if not os.path.isfile(where):  # said now, not at its first backtest (QA 2026-12-07)
            from incbt.store import _outside

            warnings.warn(
                f"strategy {made.name!r}: {not_reimportable(made.name, where)}",
                UserWarning,
                stacklevel=_outside(),
            )
        return made

    return wrap(fn) if fn is not None else wrap


def defined_in(fn: Callable[..., Any]) -> str:
    """Where a step was defined: its source file, or what Python names instead (a
    notebook's cell, ``<stdin>``)."""
    code = getattr(fn, "__code__", None)
    return inspect.getsourcefile(fn) or str(getattr(code, "co_filename", "?"))


def not_reimportable(name: str, where: str) -> str:
    """Why a strategy defined in ``where`` (not a file: a notebook's cell, the
    interpreter's prompt) cannot be backtested, and the fix."""
    return (
        f"it is defined in {where}, not in a file incbt can re-import (it imports the "
        "strategy's file again to recompute the run later, in this process or another). "
        "Fix: define it in a .py file; in a notebook, start its cell with `%%writefile "
        f"my_strategies.py`, run it, then `store.backtest({name!r}, ..., "
        "strategies_file='my_strategies.py')`"
    )


def load_strategies(path: str | os.PathLike[str]) -> dict[str, Strategy]:
    """Import a Python file and return the strategies it defines, by name.

    Raises `StrategyError` if the file is missing, fails to import, defines no
    strategy, or defines two with the same name.
    """
    p = os.path.abspath(os.fspath(path))
    found: dict[str, Strategy] = {}
    for value in import_strategies(p):
        if value.name in found:
            raise StrategyError(f"strategy file {p} defines strategy {value.name!r} twice")
        found[value.name] = value
    return dict(sorted(found.items()))


def _defines_none(p: str) -> str:
    return (
        f"strategy file {p} defines no strategy at its top level: decorate a step function "
        "with @strategy(params=..., state=...) there (one made in a function, or under "
        '`if __name__ == "__main__":`, is not seen when incbt imports the file)'
    )


def import_strategies(path: str | os.PathLike[str], require: bool = True) -> list[Strategy]:
    """Import a Python file and return every strategy object it holds at module level
    (a name defined twice and kept under two variables: both, in the module's order).

    Raises `StrategyError` if the file is missing, fails to import or (``require``)
    defines no strategy.
    """
    p = os.path.abspath(os.fspath(path))
    if os.path.isdir(p):  # it said "does not exist" (QA 2026-12-05)
        raise StrategyError(
            f"strategy file {p} is a folder: give the .py file that defines the strategies"
        )
    if not os.path.isfile(p):
        raise StrategyError(f"strategy file {p} does not exist")
    # The module's name is part of Numba's cached code (it imports the module by
    # name when it loads a kernel): name it after the file's content, so that the
    # same file gets the same name in every process and at any path.
    stamp = file_stamp(p)
    with open(p, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    # imported once per version of the file in a process: importing runs its top-level
    # code, which ran two or three times a call (QA 2026-12-06: a print in the file)
    helpers_edited(os.path.dirname(p))  # then its strategies are imported again
    known = _IMPORTED.get((p, stamp, digest))
    if known is not None:
        if require and not known:
            raise StrategyError(_defines_none(p))
        return list(known)
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(p))[0])
    mod_name = f"incbt_user_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise StrategyError(f"strategy file {p} cannot be imported (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(mod_name)
    sys.modules[mod_name] = module
    folder = os.path.dirname(p)
    added = folder not in sys.path
    if added:  # the file may import helper modules that sit next to it
        sys.path.insert(0, folder)
    shadowed = _own_helpers_in(folder)
    before = set(sys.modules)
    IMPORTING_STRATEGIES.append(p)
    try:
        spec.loader.exec_module(module)
    except AnyStrategyError as e:
        _restore(mod_name, previous)
        raise StrategyError(f"strategy file {p}: {e}") from e
    except BaseException as e:
        _restore(mod_name, previous)
        if isinstance(e, KeyboardInterrupt):
            raise
        if isinstance(e, SystemExit):  # sys.exit(3) ended the command as incbt's bug exit,
            # without a word (QA 2026-12-05)
            raise StrategyError(
                f"strategy file {p} exits when imported (sys.exit({e.code!r})): a strategies "
                "file defines strategies; put what it runs as a script under "
                '`if __name__ == "__main__":`'
            ) from None
        raise StrategyError(f"strategy file {p} failed to import: {type(e).__name__}: {e}") from e
    finally:
        IMPORTING_STRATEGIES.pop()
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        _keep_helpers(folder, before, shadowed)
    found: dict[int, Strategy] = {}
    for value in vars(module).values():
        if isinstance(value, Strategy) and value.py_step.__module__ == mod_name:
            found.setdefault(id(value), value)
    from incbt.engine.strategies import BUILTINS

    for strat in found.values():
        if strat.name in BUILTINS:  # ran in its place without a word, both in one
            # leaderboard under one name (QA 2026-12-05)
            raise StrategyError(
                f"strategy file {p} defines {strat.name!r}, a built-in's name: give yours "
                f"another (@strategy(name=...))"
            )
    _IMPORTED[(p, stamp, digest)] = tuple(found.values())
    if require and not found:
        raise StrategyError(_defines_none(p))
    return list(found.values())


# the strategies of each file imported by this process: (path, stamp, content digest) ->
# its strategies (a file edited, or only touched, is imported again)
_IMPORTED: dict[tuple[str, tuple[int, int] | None, str], tuple[Strategy, ...]] = {}


# helper modules each strategies folder's files imported from it: folder -> name -> module
_HELPERS: dict[str, dict[str, types.ModuleType]] = {}
# the file stamp of each of those modules when it was imported: folder -> name -> stamp
_HELPER_STAMPS: dict[str, dict[str, tuple[int, int] | None]] = {}


def helpers_edited(folder: str) -> bool:
    """Whether a helper module a strategies file of ``folder`` imported from it was
    edited since (its file's stamp changed): those are forgotten (out of
    :data:`_HELPERS` and ``sys.modules``), and so are the folder's files imported
    (:data:`_IMPORTED`), whose strategies call them, so that the next import of a file
    of that folder imports both again. A process that stays up (a notebook) computed with the
    helper as it was first imported, under that code version, until it restarted (QA
    2026-12-08: ``helpers.py`` edited, the same backtest again gave the old run while
    ``incbt update`` replaced it, and the notebook's next backtest brought it back)."""
    real = os.path.realpath(folder)
    stamps = _HELPER_STAMPS.get(real, {})
    mods = _HELPERS.get(real, {})
    edited = [n for n, mod in mods.items() if file_stamp(_module_file(mod)) != stamps.get(n)]
    for name in edited:
        mod = mods.pop(name)
        stamps.pop(name, None)
        if sys.modules.get(name) is mod:
            del sys.modules[name]
    if edited:
        for key in [k for k in _IMPORTED if os.path.realpath(os.path.dirname(k[0])) == real]:
            del _IMPORTED[key]
        _HELPERS_EDITED.append(real)
    return bool(edited)


# the folders whose helpers were found edited, in order: its length is a generation that
# the callers' own caches of imported files take in their keys (one finding is for all)
_HELPERS_EDITED: list[str] = []


def helpers_generation() -> int:
    """How many times :func:`helpers_edited` found helpers edited in this process."""
    return len(_HELPERS_EDITED)


def _module_file(mod: types.ModuleType) -> str | None:
    f = getattr(mod, "__file__", None)
    return os.path.realpath(f) if isinstance(f, str) else None


def _own_helpers_in(folder: str) -> dict[str, types.ModuleType]:
    """Make ``import NAME`` in a strategies file of ``folder`` give the ``NAME.py`` (or
    package) next to it: take out of ``sys.modules`` the modules of those names loaded
    from elsewhere (another folder's file imported its own ``helpers.py`` first: QA
    2026-12-06, each file's strategy then ran the other's helpers, and every update
    replaced the runs of one of them), put back the ones this folder's files imported
    before (a module is imported once per process). Returns what it took out."""
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    local = {n[:-3] for n in names if n.endswith(".py")} | {
        n for n in names if os.path.isfile(os.path.join(folder, n, "__init__.py"))
    }
    if not local:
        return {}
    real = os.path.realpath(folder)
    mine = _HELPERS.get(real, {})
    taken: dict[str, types.ModuleType] = {}
    for name in [n for n in sys.modules if n.split(".", 1)[0] in local]:
        mod = sys.modules[name]
        f = _module_file(mod)
        # another folder's user code only: a module installed with Python or in
        # site-packages (a `json.py` next to the file) is what everything else imports
        if f is None or f.startswith(_LIBRARY_DIRS) or mine.get(name) is mod:
            continue
        if f.startswith(real + os.sep):
            continue
        taken[name] = sys.modules.pop(name)
    for name, mod in mine.items():
        sys.modules.setdefault(name, mod)
    return taken


def _keep_helpers(folder: str, before: set[str], taken: dict[str, types.ModuleType]) -> None:
    """After a strategies file of ``folder`` was imported: remember the modules it
    brought in from its folder (:func:`_own_helpers_in` puts them back for the next),
    and give back the names taken out that nothing took meanwhile."""
    real = os.path.realpath(folder)
    for name in set(sys.modules) - before:
        f = _module_file(sys.modules[name])
        if f is not None and f.startswith(real + os.sep) and not name.startswith("incbt_user_"):
            _HELPERS.setdefault(real, {})[name] = sys.modules[name]
            _HELPER_STAMPS.setdefault(real, {})[name] = file_stamp(f)
    for name, mod in taken.items():
        sys.modules.setdefault(name, mod)


def _restore(mod_name: str, previous: types.ModuleType | None) -> None:
    if previous is None:
        sys.modules.pop(mod_name, None)
    else:
        sys.modules[mod_name] = previous
