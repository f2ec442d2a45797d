"""The settings registry: every setting once, with its default and help.

Resolution order (later wins): the registry default, the store's own
settings (``incbt init --set NAME=VALUE``, kept in the catalog), the
environment (``INCBT_<NAME>``), then explicit arguments. Store-scoped
settings (marked ``store=True``) are fixed when the store is created, because
changing them would change what the stored data means.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from incbt.errors import UsageError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    type: type
    help: str
    store: bool = False  # fixed at init, part of the store's identity
    # the largest value a number takes (every number is finite, and 0 or more: see
    # _ZERO_MEANS); the help says it
    maximum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "session_tz",
        "UTC",
        str,
        "Time zone whose calendar date defines a bar's trading day (IANA name).",
        store=True,
    ),
    Setting(
        "snapshot_keep_days",
        60,
        int,
        "Keep every day's engine snapshot for this many most recent days (the window moves "
        "in 16-day blocks, so up to ~11 more are kept), then one a month. 1 to 36,500.",
        store=True,
        maximum=36_500,
    ),
    Setting(
        "row_group_rows",
        16384,
        int,
        "Most rows in a bars row group; row groups always hold whole days. 1 to 16,777,216.",
        store=True,
        maximum=1 << 24,
    ),
    Setting(
        "bucket_max_files",
        8,
        int,
        "Most bars files an (instrument, month) may have: new days of a month are written "
        "as small append files, and an ingest that would exceed this folds the month's "
        "files into one (1: always rewrite the month whole). 1 to 10,000.",
        maximum=10_000,
    ),
    Setting(
        "ingest_chunk_mb",
        64.0,
        float,
        "Ingest reads input files this many MiB at a time, so memory stays bounded (a "
        "bigger CSV or Parquet file is read in parts); the whole call is still one atomic "
        "commit. More than 0, at most 1,048,576 (1 TiB).",
        maximum=1 << 20,
    ),
    Setting(
        "lock_timeout",
        30.0,
        float,
        "Seconds a writer waits for another process's write lock before giving up; 0: "
        "fail at once (exit 75). At most 604,800 (a week).",
        maximum=604_800,
    ),
    Setting(
        "ray_threshold",
        0,
        int,
        "A sweep of at least this many bar-steps starts a local Ray by itself; 0: only "
        "when --workers or --address ask (a local Ray does not pay off on one small machine). "
        "At most 10**18.",
        maximum=10**18,
    ),
    Setting(
        "threads",
        0,
        int,
        "Most threads a command runs tasks on in this process (reading bars, running "
        "kernels); 0: one per core this process may use. Results do not depend on it. "
        "At most 4,096.",
        maximum=4096,
    ),
    Setting(
        "processes",
        0,
        int,
        "Most worker processes a command forks for a big plan (Linux; each has its own "
        "GIL, where threads share one); 0: one per core this process may use; 1: none "
        "(threads in this process). Results do not depend on it. At most 4,096.",
        maximum=4096,
    ),
    Setting(
        "progress_seconds",
        10.0,
        float,
        "Where stderr is not a terminal (a log file, CI), long work prints a progress line "
        "this often (counts, rate, ETA); 0: never. A terminal gets progress bars. At most "
        "86,400 (a day).",
        maximum=86_400,
    ),
    Setting(
        "map_size_mb",
        256.0,
        float,
        "Initial LMDB map size in MiB; the catalog doubles it by itself when full. More "
        "than 0, at most 1,048,576 (1 TiB of address space: a 64-bit machine maps it, "
        "and no catalog needs more to start).",
        maximum=1 << 20,
    ),
)

BY_NAME = {s.name: s for s in SETTINGS}


def parse(name: str, raw: Any) -> Any:
    """Parse and check one setting's value, or raise UsageError naming the fix."""
    s = BY_NAME.get(name)
    if s is None:
        raise UsageError(f"unknown setting {name!r}; known settings: {', '.join(sorted(BY_NAME))}")
    if s.type in (int, float):
        return _number(s, raw)
    try:
        value = s.type(raw)
    except (TypeError, ValueError):
        raise UsageError(f"setting {name}={raw!r} is not a valid {s.type.__name__}") from None
    if name == "session_tz":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(
                f"setting session_tz={value!r} is not a known IANA time zone "
                "(e.g. UTC, America/New_York)"
            ) from None
    return value


def _number(s: Setting, raw: Any) -> Any:
    """A numeric setting's value: a finite number in its range, or UsageError."""
    name = s.name
    shown = repr(raw) if len(repr(raw)) <= 40 else repr(raw)[:37] + "..."
    lo = 0 if name in _ZERO_MEANS else (1 if s.type is int else 0)
    hi = s.maximum
    kind = "whole number" if s.type is int else "number"
    span = f"{lo}" + (" or more" if hi is None else f" to {hi:,.0f}")
    if s.type is float and name not in _ZERO_MEANS:
        span = "more than 0" + ("" if hi is None else f", at most {hi:,.0f}")
    fix = f"give a {kind}, {span}" + (f" (0: {_ZERO_MEANS[name]})" if name in _ZERO_MEANS else "")
    value: float | int | None = None
    if isinstance(raw, str):
        text = raw.strip()
        with contextlib.suppress(ValueError):
            # not "1_000": Python reads it as 1000, which `-p` and `-g` refuse (QA)
            value = None if "_" in text else (int(text) if s.type is int else float(text))
    elif isinstance(raw, numbers.Integral) and not isinstance(raw, bool):
        value = int(raw)
        if s.type is float:
            value = float(raw) if abs(value) < 2**1000 else math.inf
    elif isinstance(raw, numbers.Real) and not isinstance(raw, bool) and s.type is float:
        value = float(raw)
    if value is None:  # "abc", 5.5 or "5.0" for a whole number, True, None
        raise UsageError(f"setting {name}={shown} is not a valid {s.type.__name__}. Fix: {fix}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"setting {name}={shown} is not a finite number. Fix: {fix}")
    if value < 0 or (value == 0 and name not in _ZERO_MEANS):
        if name in _ZERO_MEANS:
            raise UsageError(
                f"setting {name}={shown} must be 0 ({_ZERO_MEANS[name]}) or more. Fix: {fix}"
            )
        raise UsageError(f"setting {name}={shown} must be positive. Fix: {fix}")
    if hi is not None and value > hi:
        raise UsageError(f"setting {name}={shown} is too large. Fix: {fix}")
    return value


_ZERO_MEANS = {  # settings where 0 is allowed, and what it means
    "ray_threshold": "Ray only when --workers or --address ask",
    "threads": "one per core this process may use",
    "processes": "one per core this process may use",
    "progress_seconds": "no progress lines",
    "lock_timeout": "fail at once when another writer holds the lock",  # QA 2026-12-05
}


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity where the OS has one (a
    container's or ``taskset``'s cpuset), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def from_env(name: str) -> Any | None:
    var = f"INCBT_{name.upper()}"
    raw = os.environ.get(var)
    if raw is None:
        return None
    try:
        return parse(name, raw)
    except UsageError as exc:
        raise UsageError(f"environment variable {var}: {exc}") from None


def _env_as_given(name: str) -> Any | None:
    """The variable of a setting, parsed, or its text where it does not parse: for a
    store's setting, which the variable does not change (said as ignored, not refused)."""
    try:
        return from_env(name)
    except UsageError:
        return os.environ[f"INCBT_{name.upper()}"]


def ignored_env(stored: dict[str, Any]) -> list[str]:
    """The store's own settings an ``INCBT_<NAME>`` variable asks to change: each as one
    line saying the store keeps its value (they are fixed at ``init``)."""
    out = []
    for s in SETTINGS:
        if not s.store or s.name not in stored:
            continue
        env = _env_as_given(s.name)
        if env is not None and env != stored[s.name]:
            out.append(
                f"INCBT_{s.name.upper()}={os.environ[f'INCBT_{s.name.upper()}']} is ignored: "
                f"this store's {s.name} is {stored[s.name]!r}, fixed when it was created "
                "(a new store takes it: `incbt init --set` or the variable)"
            )
    return out


def explain(stored: dict[str, Any] | None, as_text: bool = True) -> list[dict[str, Any]]:
    """Every setting: its value in effect here (for the store's, ``stored``; None: no
    store, what ``init`` would take), where it comes from, its default, scope and help.
    ``as_text``: values and defaults as text (one column type for a table); else as they
    are (numbers as numbers: JSON)."""

    def text(v: Any) -> str:  # 64, as README writes it, not 64.0 (QA 2026-12-06)
        return str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else str(v)

    shown = text if as_text else (lambda v: v)
    rows = []
    for s in SETTINGS:
        var = f"INCBT_{s.name.upper()}"
        kept = s.store and stored is not None and s.name in stored  # the variable unread
        env = _env_as_given(s.name) if kept else from_env(s.name)
        if env is not None and not kept:
            value, src = env, f"env {var}"
        elif stored is not None and s.name in stored:
            value, src = stored[s.name], "store"
            if env is not None and env != value:
                src += f" ({var} ignored: fixed at init)"
        else:
            value, src = s.default, "default"
        rows.append(
            {
                "name": s.name,
                "value": shown(value),
                "from": src,
                "default": shown(s.default),
                "scope": "store (fixed at init)" if s.store else f"process ({var})",
                "help": s.help,
            }
        )
    return rows


def resolve(name: str, stored: dict[str, Any] | None = None, explicit: Any = None) -> Any:
    """The value of a setting: explicit, else env, else the store's, else the default."""
    if explicit is not None:
        return parse(name, explicit)
    if BY_NAME[name].store and stored and name in stored:  # the store's: the variable is
        return stored[name]  # not read (QA 2026-12-06: a malformed one stopped every command)
    env = from_env(name)
    if env is not None:
        return env
    return BY_NAME[name].default


def unknown_variables() -> list[str]:
    """A line for each ``INCBT_`` variable of the environment incbt does not read, with
    the closest it reads (a misspelled one was ignored without a word: QA 2026-12-06 in
    the CLI, 2026-12-07 in Python)."""
    import difflib

    known = {"INCBT_STORE", "INCBT_QUERIES"} | {f"INCBT_{x.name.upper()}" for x in SETTINGS}
    out = []
    for var in sorted(k for k in os.environ if k.startswith("INCBT_") and k not in known):
        close = [
            f"INCBT_{m}"
            for m in difflib.get_close_matches(var[6:], sorted(k[6:] for k in known), n=1)
        ]
        out.append(
            f"{var} is not a variable incbt reads"
            + (f"; did you mean {close[0]}?" if close else "")
            + " (`incbt settings` lists the settings and their variables)"
        )
    return out
