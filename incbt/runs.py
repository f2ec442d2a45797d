"""Runs: register them, plan what they lack, compute it, commit it.

A run's id is a hash of everything that defines its results (SEMANTICS.md
"A run"): strategy, code version, parameters, execution parameters, start date
and universe. Registering the same run twice changes nothing; bringing a run
up to date computes only the days its results lack.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import threading
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from incbt.bars.schema import day_to_iso, given_day, iso_to_day
from incbt.catalog import CHANGE_REMOVED
from incbt.catalog import runs as rc
from incbt.engine import (
    Strategy,
    exec_params_from_dict,
    get_strategy,
    load_strategies,
    params_from_dict,
    params_to_dict,
    state_width,
)
from incbt.errors import (
    CatalogError,
    NotFoundError,
    QueryError,
    RunReplacedWarning,
    SetupError,
    StoreError,
    StrategyError,
    UsageError,
    every_instrument,
    map_dependency_error,
    names,
)
from incbt.execute import (
    DirectBars,
    Executor,
    Latest,
    TaskResult,
    compute_task,
    deferred_stops,
    remember,
    resolve_strategy,
    task_fields,
)
from incbt.plan import InstrumentDays, Plan, RunSpec, SegmentTask, plan, split_tasks
from incbt.progress import NULL, Reporter
from incbt.results import (
    PORTFOLIO,
    RECENT_BLOCK,
    BatchFiles,
    CommitSummary,
    DailyRows,
    PartFiles,
    batch_paths,
    fallen_out,
    finalize,
    portfolio_update,
    retained,
)
from incbt.results.metrics import (
    ACC_FIELDS,
    ACC_WIDTH,
    METRICS,
    fold_portfolio,
    metrics_table,
    portfolio_pnl,
)
from incbt.settings import usable_cores

EXEC_NAMES = ("notional", "fee_bps", "slippage_bps")
FROM_FIRST_BAR = "0001-01-01"  # the start of a run given none: every bar of every instrument
_LAST_DAY = iso_to_day("9999-12-31")  # after any day a store can hold


def make_run_id(
    strategy: str,
    code_version: str,
    params: Mapping[str, Any],
    exec_params: Mapping[str, float],
    start: str,
    universe: list[str] | str,
    fork: Mapping[str, Any] | None = None,
) -> str:
    """A run's id: a hash of what defines it (a fork's: its base run and day too)."""
    ident = {
        "strategy": strategy,
        "code_version": code_version,
        "params": dict(params),
        "exec": dict(exec_params),
        "start": start,
        "universe": universe,
    }
    if fork is not None:
        ident["fork"] = dict(fork)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def resolve(strategy: str | Strategy, strategies_file: str | None) -> tuple[Strategy, str]:
    """(Strategy, source) from a name (built-in or in the file) or a Strategy object."""
    if not isinstance(strategy, str | Strategy):
        raise UsageError(
            f"strategy: give a strategy's name or a strategy made with @incbt.strategy, "
            f"not {strategy!r}"
        )
    if isinstance(strategies_file, os.PathLike):
        strategies_file = os.fspath(strategies_file)
    if strategies_file is not None and not isinstance(strategies_file, str):  # os.path's
        raise UsageError(  # TypeError before (QA 2026-12-06)
            f"strategies_file: give the path of a strategies file, not {strategies_file!r}"
        )
    if isinstance(strategy, Strategy):
        src = _source_file(strategy)
        if strategies_file and os.path.abspath(strategies_file) != src:  # QA 2026-12-06
            raise UsageError(
                f"strategy {strategy.name!r} is an object made from "
                f"{'incbt' if src == 'builtin' else src}, and strategies_file= names "
                f"{strategies_file}: give the object alone, or its name with strategies_file="
            )
        if src != "builtin":
            _refuse_unguarded_script(strategy.name, src)
            _refuse_edited_since(strategy, src)
        remember(strategy, src)
        return strategy, src
    if strategies_file:
        path = os.path.abspath(strategies_file)
        user = load_strategies(path)
        if strategy in user:
            _refuse_unguarded_script(strategy, path)
            return user[strategy], path
        return get_strategy(strategy, user), "builtin"
    return get_strategy(strategy), "builtin"


def resolve_in(
    store: Any, strategy: str | Strategy, strategies_file: str | None
) -> tuple[Strategy, str]:
    """:func:`resolve` for a command on ``store``: a name it does not know is pointed to
    the file the store's runs of that name came from, if any."""
    try:
        return resolve(strategy, strategies_file)
    except StrategyError as exc:
        if isinstance(strategy, str) and str(exc).startswith("unknown strategy"):
            raise StrategyError(f"{exc}{_files_of(store, strategy)}") from None
        raise


def _files_of(store: Any, name: str) -> str:
    """Where the store's runs of a strategy ``name`` came from, as a hint for a command
    that named it without its file ("" if none did)."""
    with store.catalog.env.read() as txn:
        files = sorted({r.source for r in rc.runs(store.catalog, txn) if r.strategy == name})
    files = [f for f in files if f != "builtin"]
    if not files:
        return ""
    if len(files) == 1:
        return (
            f". This store's runs of {name!r} came from {files[0]}: give it with "
            f"--strategies {files[0]} (strategies_file= in Python)"
        )
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    return (  # one of them, not the last as if it were the only (QA 2026-12-06)
        f". This store's runs of {name!r} came from {len(files)} files, "
        f"{', '.join(files[:3])}{more}: give the one you mean with --strategies FILE "
        "(strategies_file= in Python)"
    )


def _refuse_unguarded_script(name: str, path: str) -> None:
    """Refuse a run registered by the top-level code of the file that defines its
    strategy, outside ``if __name__ == "__main__":``: the script run by ``python
    script.py`` that incbt would import again to compute the run later, running its
    commands again (an import refuses them then; this says it when the run is made, not
    at the first update)."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and os.path.abspath(code.co_filename) == path:
            if not _under_main_guard(path, frame.f_lineno):
                raise StrategyError(
                    f"strategy {name!r} is defined in {path}, whose top-level code makes "
                    f"this run (line {frame.f_lineno}): incbt imports a strategy's file "
                    "again to compute its runs, which would run the script's commands "
                    'again. Fix: put them under `if __name__ == "__main__":`, or keep '
                    "strategies in a file of their own"
                )
            return
        frame = frame.f_back  # type: ignore[assignment]


def _under_main_guard(path: str, line: int) -> bool:
    """Whether ``line`` of the Python file ``path`` is in the body of an ``if __name__
    == "__main__":`` outside any function or class (True where the file cannot be read:
    nothing to say then)."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return True

    def is_guard(test: ast.expr) -> bool:
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
            return False
        sides = [test.left, test.comparators[0]]
        return (
            isinstance(test.ops[0], ast.Eq)
            and any(isinstance(a, ast.Name) and a.id == "__name__" for a in sides)
            and any(isinstance(a, ast.Constant) and a.value == "__main__" for a in sides)
        )

    def search(body: list[ast.stmt]) -> bool:
        for node in body:
            if not (node.lineno <= line <= (node.end_lineno or node.lineno)):
                continue
            if isinstance(node, ast.If):
                if is_guard(node.test) and node.body[0].lineno <= line:
                    return line <= (node.body[-1].end_lineno or line)
                return search(node.body) or search(node.orelse)
            if isinstance(node, ast.With | ast.Try | ast.For | ast.While):
                parts = [getattr(node, a, []) for a in ("body", "orelse", "finalbody")]
                parts += [h.body for h in getattr(node, "handlers", [])]
                return any(search(p) for p in parts)
            return False
        return False

    return search(tree.body)


def _refuse_edited_since(strat: Strategy, path: str) -> None:
    """An object whose file, imported as incbt imports it to compute the run later, does
    not make it: refused now, with the fix. Either the file was edited since and its code
    there is now another (its runs would be said changed, and replaced, by the next
    update), or the object is made by code the import does not run (in a function, a
    factory, under the ``__main__`` guard), so no other process could compute its runs
    (QA 2026-12-07: accepted, then `status` and `verify` elsewhere said the file "defines
    no strategy"). An edit elsewhere in the file (or of comments) leaves it as good. The
    file is imported once a process (``load_strategies`` keeps what it found)."""
    from incbt.engine.strategy_api import import_strategies, made_from_file_as_is

    # every object of the name the module holds: a name defined twice, kept under two
    # variables, computes each one's runs (incbt.execute.resolve_strategy)
    there = [x for x in import_strategies(path, require=False) if x.name == strat.name]
    if any(x.code_version == strat.code_version for x in there):
        return
    now = there[-1] if there else None
    if made_from_file_as_is(strat, path):
        made = (
            "no strategy of that name"
            if now is None
            else "another strategy of that name (other code: a factory called with other "
            "arguments, say)"
        )
        raise StrategyError(
            f"strategy {strat.name!r} is made in {path} by code that importing the file "
            f'does not run (in a function, or under `if __name__ == "__main__":`): incbt '
            f"imports the file again to compute its runs later, and finds {made} at its top "
            "level. Fix: make it at the top level of the file (a factory's strategies too: "
            "assign each to a module-level name)"
        )
    if now is None or now.code_version != strat.code_version:
        raise StrategyError(
            f"strategy {strat.name!r} was made from {path} before the file was edited, and "
            + ("the file no longer defines it" if now is None else "its code there is now other")
            + ": reload its module (importlib.reload) and pass the new object, or pass its "
            "name with strategies_file= (runs are recomputed from the file as it is)"
        )


def _source_file(strat: Strategy) -> str:
    from incbt.engine import BUILTINS

    if BUILTINS.get(strat.name) is strat:
        return "builtin"
    if strat.name in BUILTINS:  # a file defining it is refused so (QA 2026-12-07: an
        # object was taken, and its runs could be computed by no other process)
        raise StrategyError(
            f"strategy {strat.name!r} has a built-in's name: give yours another "
            "(@strategy(name=...))"
        )

    from incbt.engine.strategy_api import defined_in, not_reimportable

    path = defined_in(strat.py_step)
    if not os.path.isfile(path):
        raise StrategyError(f"strategy {strat.name!r}: {not_reimportable(strat.name, path)}")
    return os.path.abspath(path)


def register(
    store: Any,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    *,
    instruments: Sequence[str] | str | None = None,
    start: str | None = None,
    exec_params: Mapping[str, float] | None = None,
    universe_sql: str | None = None,
    strategies_file: str | None = None,
) -> rc.RunRecord:
    """Validate a run's definition and return its record (not yet committed)."""
    (rec,) = register_many(
        store,
        strategy,
        [params or {}],
        instruments=instruments,
        start=start,
        exec_params=exec_params,
        universe_sql=universe_sql,
        strategies_file=strategies_file,
    )
    return rec


# a loop over this many runs or more shows progress (a sweep of 100,000 points took
# seconds to register and plan without a word: QA 2026-12-05)
COUNTED_FROM = 5_000


def _counter(progress: Reporter, what: str, n: int) -> Callable[[], None]:
    """A call per item of a loop of ``n`` that advances a progress task by thousands
    (nothing below :data:`COUNTED_FROM` items); done with the last item."""
    if n < COUNTED_FROM:
        return lambda: None
    task = progress.task(what, n)
    seen = [0]

    def one() -> None:
        seen[0] += 1
        if seen[0] % 1000 == 0 or seen[0] == n:
            task.advance(1000 if seen[0] % 1000 == 0 else seen[0] % 1000)
            if seen[0] == n:
                task.done()

    return one


def register_many(
    store: Any,
    strategy: str | Strategy,
    points: Sequence[Mapping[str, Any]],
    *,
    instruments: Sequence[str] | str | None = None,
    start: str | None = None,
    exec_params: Mapping[str, float] | None = None,
    universe_sql: str | None = None,
    strategies_file: str | None = None,
    progress: Reporter = NULL,
) -> list[rc.RunRecord]:
    """:func:`register` of each parameter dict of ``points``, with one setup: the
    strategy, execution parameters, universe and start are checked once (a sweep of
    100,000 points read the store's instruments 100,000 times: 4.5 of its 14 s)."""
    strat, source = resolve_in(store, strategy, strategies_file)
    counted = _counter(progress, "registering runs", len(points))
    rows = []
    for p in points:
        counted()
        rows.append(params_from_dict(strat, p or {}))
    erow = exec_params_from_dict(exec_params or {})
    edict = {n: float(v) for n, v in zip(EXEC_NAMES, erow.tolist(), strict=True)}
    known = store.instruments()
    with store.catalog.env.read() as txn:  # removed whole (incbt remove): no bar, not
        # unknown, as an instrument with no bar after a run's start (QA 2026-12-06: a
        # sweep over it could not be resumed, nor its backtest run again)
        removed = store.catalog.removed_instruments(txn)
    if universe_sql is not None:
        if not universe_sql.strip():  # QA 2026-12-07: '' ran every instrument
            raise UsageError(
                f"--universe {universe_sql!r} (universe= in Python) is empty: give a SELECT "
                "over bars returning an `instrument` column, or leave it out for every "
                "instrument"
            )
        if instruments is not None:  # a list, or "all" (QA 2026-12-07: taken with it)
            raise UsageError(
                "give one of --instruments, --all or --universe (instruments= or universe= "
                "in Python), not both"
            )
        try:
            t = store.sql(universe_sql)
        except QueryError as exc:  # said as the --universe it is, with its own fix (QA
            # 2026-12-06: the query command's fix, --output ... -o FILE)
            said = str(exc).split(". Fix:")[0].removeprefix("SQL failed: ")
            raise UsageError(
                f"--universe SQL failed: {said}. Fix: give a SELECT over bars returning an "
                "`instrument` column (SELECT DISTINCT instrument FROM bars WHERE ...)"
            ) from None
        if "instrument" not in t.column_names:
            raise UsageError(
                "--universe SQL (universe= in Python) must return an `instrument` column; it "
                f"returned {', '.join(t.column_names) or 'no column'}. Fix: SELECT DISTINCT "
                "instrument FROM bars WHERE ..."
            )
        got = t.column("instrument").to_pylist()
        for k, x in enumerate(got):
            if not isinstance(x, str):  # NULL, a number: not the name of an instrument
                raise UsageError(
                    f"--universe SQL returned {x!r} as the instrument of row {k + 1}, not an "
                    "instrument's name. Fix: select names from `bars` (SELECT DISTINCT "
                    "instrument FROM bars WHERE ...), leaving NULLs out"
                )
        universe: list[str] | str = sorted(set(got))
        # one `incbt remove` took whole is known, as in a list (QA 2026-12-07: refused)
        _known_instruments(universe, known, "--universe SQL returned ", removed=removed)
    elif every_instrument(instruments):
        universe = "all"
    else:
        universe = sorted(dict.fromkeys(names(instruments, "instruments")))
        _known_instruments(universe, known, removed=removed)
    if isinstance(universe, list) and not universe:
        raise UsageError(
            "the run's universe is empty: give the instruments to run over (--instruments "
            "A,B), every one (--all), or a --universe query that selects some"
        )
    if start is None:
        # from each instrument's first bar: the run's identity does not depend on what
        # the store holds when it is registered
        start = FROM_FIRST_BAR
    start = day_to_iso(given_day(start, "start"))
    out = []
    for row in rows:
        pdict = params_to_dict(strat, row)
        rid = make_run_id(strat.name, strat.code_version, pdict, edict, start, universe)
        out.append(
            rc.RunRecord(
                rid, strat.name, strat.code_version, pdict, edict, start, universe, 0, source
            )
        )
    return out


def _known_instruments(
    universe: Sequence[str], known: Sequence[str], said: str = "", removed: Sequence[str] = ()
) -> None:
    """Refuse a universe naming an instrument the store has no bars of (and never had:
    ``removed``, instruments ``incbt remove`` took whole, are taken)."""
    have = set(known) | set(removed)
    missing = [i for i in universe if i not in have]
    if missing:
        more = ", ..." if len(known) > 5 else ""
        listed = next(
            (m for m in missing if "," in m and all(x in have for x in m.split(","))), None
        )
        # the parts of a name holding a comma (the CLI's list split it: QA 2026-12-06)
        split = next(
            (k for k in sorted(have) if "," in k and all(p in missing for p in k.split(","))),
            None,
        )
        hint = (  # instruments="A,B" in Python: one name (QA 2026-12-05)
            f"; {listed!r} is one name: give the instruments as a list, {listed.split(',')!r}"
            if listed
            else f"; the store has an instrument {split!r}: quote it in --instruments as in "
            f"a CSV line (--instruments '\"{split}\"')"
            if split
            else ""
        )
        held = (
            f"the store has {len(known)} instrument{'' if len(known) == 1 else 's'} "
            f"({', '.join(known[:5])}{more})"
            if known
            else "the store holds no bars yet: ingest some first (incbt ingest FILES)"
        )
        raise NotFoundError(
            f"{said}unknown instrument(s) {', '.join(map(repr, missing[:5]))}: {held}{hint}"
        )


def portfolio_capital(rec: rc.RunRecord, instruments: Sequence[str]) -> float:
    """A run's portfolio capital: its notional times its instruments (SEMANTICS.md)."""
    return float(rec.exec_params["notional"]) * max(1, len(instruments))


def instruments_of(rec: rc.RunRecord, known: Sequence[str]) -> tuple[str, ...]:
    return tuple(known) if rec.universe == "all" else tuple(rec.universe)


@dataclass
class UpdateReport:
    """The work a plan did (or would do)."""

    runs: int = 0
    segments: int = 0
    truncated: int = 0  # pairs cut after the days left (their last days were removed)
    tasks: int = 0
    bars_processed: int = 0
    seconds: float = 0.0
    commit: CommitSummary | None = None
    errors: list[str] = field(default_factory=list)
    plan: Plan | None = None
    compactions: int = 0
    commits: int = 0
    # runs whose portfolio is (or would be) refolded though none of their pairs is
    # computed: an "all" universe grew by instruments with no bar in the run's range
    refolds: list[str] = field(default_factory=list)
    # pairs not computed because their computation failed before and nothing it read
    # changed since: "run R, INSTRUMENT: error (event N)"
    skipped_failed: list[str] = field(default_factory=list)
    # pairs whose task never ran (a Ray task whose workers died on every try): nothing
    # stored of them changed, and the next command computes them
    not_run: list[str] = field(default_factory=list)
    executor: str = ""  # where the tasks ran (the last phase that computed any)
    # a dry run's fork pairs whose base's pair failed before and is computed again first
    # (--retry-failed, or a change of a day it read): (run, instrument) -> why. Their
    # days are in the counts, computed only if the base's pair succeeds this time (else
    # the fork's pair fails with it, computing nothing), which no dry run can know
    # (incbt.fork.base_failed): the counts are at most (:meth:`depending_on_retry`)
    depends_on_retry: dict[tuple[str, str], str] = field(default_factory=dict)
    # the last event before the call's first commit: failures recorded after it are
    # the call's own (``plan_runs(since=)``)
    since: int | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # the plan, errors and commit are in the fields
        errors = f", {len(self.errors)} failed pair(s)" if self.errors else ""
        return (
            f"<UpdateReport: {self.runs} run(s), {self.segments:,} segment(s), "
            f"{self.bars_processed:,} bar-steps in {self.seconds:.2f} s, {self.commits} "
            f"commit(s){errors}>"
        )

    def depending_on_retry(self) -> tuple[int, int]:
        """The segments and bar-steps of a dry run's counts that compute only if a failed
        pair computed again first succeeds (:attr:`depends_on_retry`): at most."""
        if not self.depends_on_retry or self.plan is None:
            return 0, 0
        works = [
            t.bars
            for t in self.plan.tasks
            for rid in t.run_ids
            if (rid, t.instrument) in self.depends_on_retry
        ]
        return len(works), sum(works)

    def failures(self, known: bool = True) -> list[str]:
        """The pairs whose strategy failed in this call, then (``known``) those that
        failed before and were not retried: what leaves the runs asked for incomplete."""
        return self.errors + (self.skipped_failed if known else [])


def _strategy_for(rec: rc.RunRecord) -> Strategy:
    return resolve_strategy(rec.strategy, rec.source, rec.code_version)


@dataclass(frozen=True)
class Staleness:
    """Why a (run, instrument) must be recomputed from a day."""

    run_id: str
    instrument: str
    from_day: int  # first invalid day
    seq: int  # the event that invalidated it
    resume_day: int | None  # the snapshot day it resumes from (None: from its start)
    removed: bool = False  # the event removed that day (incbt remove), not changed it
    retried: bool = False  # its strategy failed at event ``seq``: retried as asked


def read_mask(strat: Strategy) -> int:
    """The bar fields (FIELD_BITS) a run of ``strat`` computes from: those its step reads,
    and open (fills) and close (marks) for the engine; the others are not even loaded
    (incbt.execute.task_fields). A correction of none of them changes none of its
    results."""
    from incbt.catalog import field_mask
    from incbt.execute import task_fields

    return field_mask(task_fields(strat))


def plan_runs(
    store: Any,
    records: Sequence[rc.RunRecord],
    stale_out: list[Staleness] | None = None,
    from_scratch: bool = False,
    hypothetical: Sequence[tuple[str, int, int, int, int]] = (),
    assume_through: Mapping[tuple[str, str], int] | None = None,
    assume_failed: Mapping[tuple[str, str], str] | None = None,
    progress: Reporter = NULL,
    since: int | None = None,
    retry_failed: bool = False,
) -> Plan:
    """What it takes to bring these runs up to the last day with bars.

    A (run, instrument) is valid through its latest snapshot, unless an event
    after its last commit changed a day on or before that (a correction or a
    late day): then it is valid only through the latest snapshot before the
    first changed day, and recomputes from there. Why is reported in ``stale_out``.
    ``from_scratch``: ignore every snapshot (``verify``). ``hypothetical``:
    (instrument, day, kind, rows, the bar fields it changed) of an ingest not yet made
    (``update --dry-run``).
    ``assume_through``, ``assume_failed``: a dry run's fork pairs, as valid through a day
    or failed (why), as materializing them would leave them.
    ``since``: the last event before the caller's command: a pair whose failure an
    event after it recorded is one of the command's failures (``Plan.failed_now``).
    ``retry_failed`` (``store.update(retry_failed=True)``, ``incbt update --retry-failed``):
    the pairs whose strategy failed before are planned as if new, not skipped until a day
    they read changes (a failure of the machine's, not the strategy's, stayed recorded
    otherwise: QA 2026-12-07). Given by each caller, not read from a context variable:
    planning for anything else inside an update (a ``status()`` from its reporter) took
    the update's flag (QA 2026-12-07).
    """
    cat = store.catalog
    known = sorted(set(store.instruments()) | {h[0] for h in hypothetical})
    specs = []
    latest: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
    valid: dict[tuple[str, str], int | None] = {}
    days: dict[str, InstrumentDays] = {}
    lo: dict[str, tuple[int, int]] = {}  # instrument -> (first day to plan, warm-up bars)
    with cat.env.read() as txn:
        # instruments `incbt remove` took every day of: the runs over all instruments
        # may hold results of them, which go (Plan.truncate)
        emptied = sorted(set(cat.removed_instruments(txn)) - set(known))
        wanted = {
            rec.run_id: instruments_of(rec, known)
            + (tuple(emptied) if rec.universe == "all" else ())
            for rec in records
        }
        seqs, snaps = rc.pair_states_many(cat, txn, wanted)
        if from_scratch:
            snaps = {}
        # pairs whose computation failed (a strategy error): skipped until a day they
        # read changes (rc.put_failures)
        fails = {} if from_scratch else rc.failures(cat, txn)
        fails = {k: f for k, f in fails.items() if k in seqs}
        oldest = min(
            [q for q in seqs.values() if q is not None] + [f["seq"] for f in fails.values()],
            default=None,
        )
        # inst -> (seq, day, the bar fields it changed: a run whose strategy reads none
        # of them is not hit, see field_mask)
        changed: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        gone_days: set[tuple[str, int, int]] = set()  # (instrument, seq, day) removed
        if oldest is not None:
            for ch in cat.changes(txn, oldest):
                changed[ch.instrument].append((ch.seq, ch.day, ch.fields))
                if ch.kind == CHANGE_REMOVED:
                    gone_days.add((ch.instrument, ch.seq, ch.day))
        reduced: dict[tuple[str, str], int | None] = {}  # pairs valid through less now
        future = cat.last_seq(txn) + 1
        extra: dict[str, dict[int, int]] = defaultdict(dict)
        for inst, day, _, rows, fields in hypothetical:
            changed[inst].append((future, day, fields))
            extra[inst][day] = rows
        first_changed = {inst: min(d for _, d, _ in ch) for inst, ch in changed.items()}
        skip: set[tuple[str, str]] = set()
        failed: list[str] = []
        now: list[str] = []  # failures recorded by the caller's command (``since``)
        counted = _counter(progress, "planning runs", len(records))
        for rec in records:
            counted()
            strat = _strategy_for(rec)
            prow = params_from_dict(strat, rec.params)
            insts = wanted[rec.run_id]
            reads = read_mask(strat)  # a change of other fields leaves its results as they are
            spec = RunSpec(
                rec.run_id,
                rec.strategy,
                rec.source,
                tuple(prow.tolist()),
                tuple(rec.exec_params[n] for n in EXEC_NAMES),
                iso_to_day(rec.start),
                insts,
                strat.warmup(prow),
                rec.code_version,
            )
            specs.append(spec)
            for inst in insts:
                key = (rec.run_id, inst)
                if assume_failed and key in assume_failed:  # as the call would fail it
                    skip.add(key)
                    now.append(f"run {rec.run_id}, {inst}: {assume_failed[key]}")
                    continue
                f = fails.get(key) if fails else None
                if f is not None and assume_through and key in assume_through:
                    f = None  # a dry run's fork pair made again from its base: as it would be
                # asked for: as if never computed; a fork's pair was retried as it was made
                # again from its base (incbt.fork._retried): from here, the usual rule
                if f is not None and retry_failed and not rec.fork:
                    reduced[key] = None
                    if stale_out is not None:
                        why = Staleness(rec.run_id, inst, spec.start_day, f["seq"], None)
                        stale_out.append(dataclasses.replace(why, retried=True))
                elif f is not None:
                    retry = [
                        (d, q)
                        for q, d, m in changed.get(inst, ())
                        if q > f["seq"] and d <= f["through"] and m & reads
                    ]
                    if not retry:
                        skip.add(key)
                        said = f"run {rec.run_id}, {inst}: {f['error']}"
                        if since is not None and f["seq"] > since:
                            now.append(said)
                        else:
                            failed.append(f"{said} (event {f['seq']})")
                        continue
                    if stale_out is not None:  # why a failed pair is computed again
                        first, by = min(retry)
                        stale_out.append(
                            Staleness(
                                rec.run_id, inst, first, by, None, (inst, by, first) in gone_days
                            )
                        )
                    # where no task computes it now (its days removed), its failure goes
                    # (Plan.truncate): a store that never held those days has none
                    reduced[key] = None
                snap = snaps.get(key)
                through = None
                if snap is not None:
                    latest[key] = snap
                    through = snap[0]
                    seq0 = seqs.get(key)
                    # a change can only hit days the pair computed (most changes are new days)
                    if seq0 is not None and first_changed.get(inst, through + 1) <= through:
                        hits = [
                            (d, q)
                            for q, d, m in changed[inst]
                            if q > seq0 and spec.start_day <= d <= through and m & reads
                        ]
                        if hits:
                            first, by = min(hits)
                            back = rc.latest_snapshot(cat, txn, rec.run_id, inst, first)
                            through = None if back is None else back[0]
                            reduced[key] = through
                            if stale_out is not None:
                                stale_out.append(
                                    Staleness(
                                        rec.run_id,
                                        inst,
                                        first,
                                        by,
                                        through,
                                        (inst, by, first) in gone_days,
                                    )
                                )
                if assume_through and key in assume_through:
                    through = assume_through[key]
                    reduced.pop(key, None)
                valid[key] = through
                d0 = spec.start_day if through is None else through + 1
                old = lo.get(inst)
                if old is None:
                    lo[inst] = (d0, spec.warmup)
                elif d0 < old[0] or spec.warmup > old[1]:
                    lo[inst] = (min(old[0], d0), max(old[1], spec.warmup))
        # the planner sees each instrument's days from the earliest it must compute,
        # plus enough earlier days for the warm-up: work does not grow with history
        for inst, (d0, warm) in lo.items():
            ds, ns = cat.day_rows(txn, inst, d0, warm)
            if inst in extra:  # days a dry run's ingest would add or change
                rows_of = dict(zip(ds.tolist(), ns.tolist(), strict=True)) | extra[inst]
                order = sorted(rows_of)
                days[inst] = InstrumentDays.of(order, [rows_of[d] for d in order])
            else:
                days[inst] = InstrumentDays(ds, ns)
    # tasks over instruments with days removed since cut from their resume point
    out = plan(specs, days, valid, skip, {inst for inst, _, _ in gone_days})
    out.latest = latest
    # a pair whose stored results reach past its valid day, that no task recomputes:
    # the days after it were removed, and nothing is left to compute
    covered = {(rid, t.instrument) for t in out.tasks for rid in t.run_ids}
    out.truncate = {k: v for k, v in reduced.items() if k not in covered}
    out.skipped_failed = failed
    out.failed_now = now
    return out


def resume_states(
    store: Any,
    tasks: Sequence[SegmentTask],
    known: Latest | None = None,
) -> list[np.ndarray | None]:
    """The snapshot each task's runs resume from (read by the driver, sent with the task).

    ``known``: snapshots already read (the plan's ``latest``), used where their day
    is the resume day.
    """
    cat = store.catalog
    known = known or {}
    out: list[np.ndarray | None] = []
    with cat.env.read() as txn:
        for t in tasks:
            if t.resume_day is None:
                out.append(None)
                continue
            states = []
            for rid in t.run_ids:
                snap = known.get((rid, t.instrument))
                if snap is None or snap[0] != t.resume_day:
                    snap = rc.latest_snapshot(cat, txn, rid, t.instrument, t.resume_day + 1)
                if snap is None or snap[0] != t.resume_day:
                    raise CatalogError(
                        f"run {rid}, {t.instrument}: the snapshot of "
                        f"{day_to_iso(t.resume_day)} the plan resumes from is missing"
                    )
                states.append(snap[1])
            out.append(np.stack(states))
    return out


def bar_source(store: Any, tasks: Sequence[SegmentTask]) -> DirectBars:
    """Index entries of exactly the days the tasks read (history included)."""
    first: dict[str, int] = {}
    for t in tasks:
        first[t.instrument] = min(first.get(t.instrument, t.history_day), t.history_day)
    return DirectBars.from_store(store, first)


# Tasks a thread may run ahead of the caller: what waits is a few results, not a share
# of the universe. (4 measured 388-412 ms against 2's 413-426 for 8 sets x 100
# instruments x 100 days, within these machines' noise; 2 is the tested default.)
AHEAD = 2


# Kernels release the GIL, and reads mostly run in Arrow without it, so threads pay off
# once a task has enough of either to do; what the caller does with each result
# (encode its rows, commit its runs' snapshots) grows with its runs, and there one
# thread is faster. Measured on 2 cores, end to end, best of 4-6 in alternating
# processes, a backtest of 100 instruments x 100 days (39,000 bar-steps a set), the
# caller alone against 2 threads: 1 set 200-205 against 183-192 ms (the same 1 set from
# a later start: 60 days 168-170 against 167-169, 47 days 145-150 against 143-144, 32
# days 104-108 against 113-129), 2 sets 238-243 against 222-269 ms, 4 sets 293-302
# against 233-254 ms; an update of one day, 100 instruments x 20 runs (7,800
# bar-steps a task) 184-199 against 195-220 ms, 500 instruments x 100 runs (39,000)
# 1,585-1,875 against 1,789-1,896 ms.
THREADS_MIN_WORK = 100_000  # mean bar-steps a task from which the executor uses every core
THREADS_MIN_BARS = 30_000  # or mean bars a task reads (its history included)


def threads_for(tasks: Sequence[SegmentTask], cores: int | None = None) -> int:
    """The executor's threads for these tasks: one per core (``cores``, by default those
    this process may use; at most one per task) when their mean work is at least
    ``THREADS_MIN_WORK`` bar-steps or they read at least ``THREADS_MIN_BARS`` bars on
    average, else one (the caller's own: no thread is started)."""
    cores = cores or usable_cores()
    n = len(tasks)
    if (
        not n
        or sum(t.work for t in tasks) < THREADS_MIN_WORK * n
        and sum(t.bars + t.history_bars for t in tasks) < THREADS_MIN_BARS * n
    ):
        return 1
    return max(1, min(n, cores))


TASK_THREADS = "incbt-task"  # the executor's threads' names (cli: not waited for at exit)


class LocalExecutor:
    """Runs tasks in this process, on the calling thread or on threads.

    Reading a task's bars takes the GIL at many short calls (catalog entries, open,
    footer, copy) between Arrow's decoding, which releases it; what the caller does with
    each result (encode its rows, commit) holds it; kernels release it. Where one thread
    is picked (:func:`threads_for`: small tasks), the caller does it all: a thread
    reading beside it handed the GIL back and forth at each of those calls (a day-index
    lookup of 50 us took 200 us; an update of 100 instruments x 20 runs spent 68-97 ms
    computing that way against 58-60 ms on the caller alone). Where tasks have enough
    to read or compute for a thread per core, the caller's own work is the bottleneck:
    threads read and compute, and the caller only takes the results (a 20-point sweep
    of 100 instruments x 252 days: 962-1,026 ms against 1,078-1,157 with the caller
    reading every task's bars). The threads read at the same time: since a read is mostly
    Arrow's own (:func:`incbt.store.read_days`), two at once no longer hand the GIL
    back and forth more than they gain (one set over 100 instruments x 5 years:
    best 1.56-1.67 s with one thread reading at a time, 1.38-1.43 s without).
    """

    name = "in this process"

    def __init__(self, threads: int | None = None, most: int | None = None) -> None:
        """``threads``: exactly this many (1: the caller alone), whatever the tasks;
        ``most``: at most this many, picked by :func:`threads_for` (the ``threads``
        setting); by default one per core this process may use."""
        self.threads = threads
        self.most = most

    @classmethod
    def of(cls, store: Any) -> LocalExecutor:
        """The executor a store's commands use: at most its ``threads`` setting."""
        return cls(most=int(store.settings["threads"]) or None)

    def parallelism(self) -> int:
        return self.threads or self.most or usable_cores()

    def map(
        self,
        store: Any,
        tasks: Sequence[SegmentTask],
        keep: int,
        progress_advance: Callable[[int], None],
        known: Latest | None = None,
    ) -> Iterator[TaskResult]:
        """Results in task order."""
        source = DirectBars.lazy(store)  # each task reads its entries when it is loaded
        resumes = resume_states(store, tasks, known)
        n = self.threads or threads_for(tasks, self.most)
        todo = iter(zip(tasks, resumes, strict=True))

        def run(
            t: SegmentTask, resume: np.ndarray | None, scratch: dict[str, np.ndarray]
        ) -> TaskResult:
            # scratch: the buffers the bars are read into, reused by the next task (fresh
            # memory is slow to touch; a result keeps no bar array)
            strat = resolve_strategy(t.strategy, t.source, t.version)
            b = source.load(t.instrument, t.history_day, t.last_day, task_fields(strat), scratch)
            return trim(compute_task(t, strat, b, resume), keep)

        if n == 1:
            scratch: dict[str, np.ndarray] = {}
            for t, resume in todo:
                r = run(t, resume, scratch)
                progress_advance(t.work)
                yield r
            return
        local = threading.local()  # each thread's buffers
        # Numba loaded here, before the threads: under a memory limit its import failed in
        # one of them, leaving a half-loaded module where the others said "cannot import
        # name 'config' from 'numba.core'" (exit 3), the one said first; here it fails
        # once, with the want of memory in its chain (QA 2026-12-07)
        import numba  # noqa: F401

        def on_thread(t: SegmentTask, resume: np.ndarray | None) -> TaskResult:
            if not hasattr(local, "scratch"):
                local.scratch = {}
            r = run(t, resume, local.scratch)
            progress_advance(t.work)
            return r

        # a bounded window, not every task at once: results the caller has not taken
        # yet wait in memory, so the threads run at most AHEAD per thread ahead of it
        pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=TASK_THREADS)
        ahead = deque(pool.submit(on_thread, *a) for a in itertools.islice(todo, AHEAD * n))
        ended = False
        try:
            while ahead:
                r = ahead.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    ahead.append(pool.submit(on_thread, *nxt))
                yield r
            ended = True
        finally:
            # interrupted (Ctrl-C, SIGTERM, an error): what has not started never will,
            # and the tasks running are not waited for: their results would be dropped,
            # and a kernel runs for minutes where a task is big (QA 2026-12-06: a sweep
            # of breakout lookbacks to 4,000 took 94 s to stop; see cli._exit)
            pool.shutdown(wait=ended, cancel_futures=True)


# The bars a plan reads (history included) from which forking worker processes pays
# over threads, where there are cores for more than one. What processes win is the
# GIL: reading a task's bars holds it at many short calls, and so does the caller's
# encoding of result rows; kernels release it, so a plan's bar-steps gain less.
# Measured on 2 cores, best of 5 side by side, backtests of sma_cross over N
# instruments x 100 days (3,900 bars a day per 100 instruments), threads against
# processes: 1 set, 20 instruments 46 / 61 ms, 40: 86 / 99, 50: 104 / 103, 60:
# 121 / 108, 100: 184 / 147; 8 sets, 20 instruments 75 / 104 ms, 50: 201 / 188, 60:
# 238 / 219; 100 instruments, 4 sets 247 / 216 ms, 20 sets 491 / 464. A 20-point
# sweep of 100 instruments x 252 days (9.8 M bars): 931 / 928 ms.
PROCESSES_MIN_BARS = 2_000_000


def local_executor(store: Any, tasks: Sequence[SegmentTask]) -> Executor:
    """The executor a command runs a plan's tasks on in this machine: worker processes
    (:class:`incbt.execute.processes.ProcessExecutor`, at most the ``processes``
    setting) where the tasks are big enough for more than one (:func:`threads_for`),
    the plan reads at least ``PROCESSES_MIN_BARS`` bars and this process may fork; else
    this process's threads (:class:`LocalExecutor`)."""
    from incbt.execute.processes import ProcessExecutor, can_fork

    n = threads_for(tasks, int(store.settings["processes"]) or None)
    bars = sum(t.bars + t.history_bars for t in tasks)
    if n > 1 and bars >= PROCESSES_MIN_BARS and can_fork():
        return ProcessExecutor(n)
    return LocalExecutor.of(store)


def trim(r: TaskResult, keep: int) -> TaskResult:
    """Keep only the snapshots the retention rule keeps (before they travel or wait)."""
    mask = retained(r.days, keep)
    r.states, r.snap_days = r.states[:, mask], r.days[mask]
    return r


def execute(
    store: Any, the_plan: Plan, progress: Reporter = NULL, executor: Executor | None = None
) -> list[TaskResult]:
    """Run a plan's tasks (in this process by default); results in task order."""
    keep = int(store.settings["snapshot_keep_days"])
    bar = progress.task("computing", the_plan.bars)
    out = list((executor or LocalExecutor.of(store)).map(store, the_plan.tasks, keep, bar.advance))
    bar.done()
    return out


def next_clean_batch(store: Any) -> int:
    """The next batch number, after cleaning up what a crashed writer left."""
    from incbt.bars.ingest import recover

    recover(store.path, store.catalog)
    with store.catalog.env.read() as txn:
        return rc.next_batch(store.catalog, txn)


def open_batch(store: Any) -> BatchFiles:
    """The next batch's files, after cleaning up what a crashed writer left."""
    return BatchFiles(store.path, store.catalog, next_clean_batch(store))


# Before any bar (timestamps are int64 nanoseconds: from 1677 on): the first day of the
# empty segment that cuts every row of a pair whose computation failed. 0001-01-01, so a
# date holding it still converts to Python's date.
ALL_DAYS = -719162


def _instruments_held(cat: Any, txn: Any, run_id: str) -> list[str]:
    return sorted(
        {s.instrument for s in rc.segments(cat, txn, run_id) if s.instrument != PORTFOLIO}
    )


def results_held(cat: Any, txn: Any, run_id: str) -> tuple[list[str], int]:
    """The instruments a run holds results for, and its snapshots (theirs and its
    portfolio's)."""
    insts = _instruments_held(cat, txn, run_id)
    return insts, sum(len(rc.snapshot_days(cat, txn, run_id, i)) for i in [*insts, PORTFOLIO])


def forget_results(cat: Any, txn: Any, run_ids: str | Sequence[str]) -> None:
    """Forget runs' results in the catalog (a drop, or a run replaced after its
    strategy's code changed): their snapshots, metrics, pairs and failures go; their
    rows are hidden while they are gone (``RunRecord.gone``), and cut marks make a
    computation after one is registered again (a revert of the code) supersede every one
    of them: it is computed from scratch.

    The snapshots of every run go in one pass over each instrument's keys (the runs'
    keys of a day are side by side): a pass per run and instrument made dropping a
    sweep of 273 runs over 52 instruments hold the catalog's write transaction for ~60 s
    (QA 2026-12-06), every other command waiting to open the store."""
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    by_inst: dict[str, list[str]] = defaultdict(list)
    pairs = cat.env.db(b"pairs")
    for run_id in ids:
        insts = _instruments_held(cat, txn, run_id)
        rc.mark_cuts(cat, txn, [rc.ri_key(run_id, i) for i in insts])
        for inst in insts:
            by_inst[inst].append(run_id)
            rc.delete_metrics(cat, txn, run_id, inst)
            txn.delete(rc.ri_key(run_id, inst), db=pairs)
    for inst, runs in sorted(by_inst.items()):
        rc.delete_snapshots_from_many(cat, txn, runs, inst, ALL_DAYS)
    for run_id in ids:
        rc.delete_snapshots_from(cat, txn, run_id, PORTFOLIO, ALL_DAYS)
        rc.delete_metrics(cat, txn, run_id, PORTFOLIO)
        rc.set_portfolio_dirty(cat, txn, run_id, None)
        rc.clear_run_failures(cat, txn, run_id)


def _lost_runs(r: TaskResult, latest: Mapping[tuple[str, str], Any] | None) -> list[str]:
    """The runs of a task whose pair failed and held results before (``latest``: the
    plan's snapshots; None: assume it did). A task that never ran (its Ray worker died
    on every try) loses nothing: it is retried, not recorded as failed."""
    if not len(r.days):
        return []
    t = r.task
    return [
        rid
        for rid, err in zip(t.run_ids, r.errors, strict=True)
        if err and (latest is None or latest.get((rid, t.instrument)) is not None)
    ]


def commit(
    store: Any,
    results: Sequence[TaskResult],
    new_runs: Sequence[rc.RunRecord],
    command: str,
    kind: str = "backtest",
    replaced: Sequence[tuple[str, str]] = (),
    portfolio: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] | None = None,
    latest: Mapping[tuple[str, str], tuple[int, Any]] | None = None,
    files: BatchFiles | PartFiles | None = None,
    group: int | None = None,
    next_pending: Sequence[str] = (),
    folded: Mapping[str, Mapping[str, int]] | None = None,
    truncate: Mapping[tuple[str, str], int | None] | None = None,
) -> CommitSummary:
    """Write the batch's result files, then one transaction: runs, segments, snapshots,
    metrics, event. Call under the store's write lock.

    ``replaced``: (old run, new run) pairs whose new run is complete with this commit
    (even if every pair of it failed): the old run is marked superseded.
    ``latest``: the plan's latest snapshot per pair (a pair absent had none); where
    given, snapshots after a resume point are deleted only if there are any.
    ``files``: the batch's files, to which every result was already added as it
    arrived (:func:`open_batch`), or the batches workers wrote (:class:`PartFiles`: each
    result's segments go in its own batch); without it they are written here.
    ``group``: the first batch of the command whose results this batch continues
    (compaction counts a group as one batch). ``next_pending``: the files of the
    command's next batch, already being written, which this transaction lists as
    pending (so that the next writer removes them if this process dies before their
    commit) in place of this batch's. ``folded``: per run of ``portfolio``, the
    instruments its entry PORTFOLIO holds already summed (:func:`portfolio_update`).
    ``truncate``: pairs whose days after the given one (None: every day) were removed
    (``Plan.truncate``): their results and snapshots after it go, their metrics are
    those of that day's snapshot (none: no metrics), and their runs' portfolios refold
    from the day after it, in this commit or the one completing the run.
    """
    cat = store.catalog
    root = store.path
    keep = int(store.settings["snapshot_keep_days"])
    summary = CommitSummary()
    failed: set[tuple[str, str]] = set()
    for r in results:
        for k, err in enumerate(r.errors):
            if err:
                failed.add((r.task.run_ids[k], r.task.instrument))
                said = f"{r.task.instrument}: {err}"
                # a task that never ran is no failure of the strategy (QA 2026-12-06:
                # "fix the strategy", and the event counted them as failed)
                (summary.not_run if r.not_run else summary.errors).append(said)
    if files is None:
        files = open_batch(store)
        for r in results:
            files.add(r)
    files.close()
    batch = files.batch
    batches = files.records()
    summary.batch = batch
    summary.daily_rows = files.rows["daily"]
    summary.fills = files.rows["fills"]
    summary.bars_processed = sum(r.bars_processed for r in results)

    # a failed pair has no results, as when computed from scratch: all of its rows,
    # snapshots and metrics go (its run's portfolio is refolded from ALL_DAYS)
    lost = {(rid, r.task.instrument) for r in results for rid in _lost_runs(r, latest)}
    by_run: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    if portfolio is None:  # every run of these results is complete
        for r in results:
            for k, rid in enumerate(r.task.run_ids):
                if (rid, r.task.instrument) not in failed:
                    by_run[rid][r.task.instrument] = (r.days, r.daily["pnl"][k])
        for rid, _ in lost:
            by_run[rid]  # noqa: B018 - its portfolio loses the lost pair's rows: refold it
    else:
        by_run.update(portfolio)
    first_of_run = {
        rid: min((int(d[0]) for d, _ in f.values() if len(d)), default=2**31)
        for rid, f in by_run.items()
    }
    for rid, _ in lost:
        if rid in first_of_run:
            first_of_run[rid] = ALL_DAYS
    computed = {
        rid
        for r in results
        for k, rid in enumerate(r.task.run_ids)
        if (rid, r.task.instrument) not in failed
    }
    known = store.instruments()

    def txn_fn(txn: Any) -> int:
        # counted here, from 0: a transaction that outgrew the map runs again (Env.write),
        # and counted twice (QA 2026-12-06: a big sweep's events summed more segments
        # than the command printed)
        summary.segments = summary.days = summary.truncated = 0
        redone: dict[str, int] = {}  # run -> the first day a task cut before its first day
        revived: set[tuple[str, str]] = set()  # pairs of runs registered again, with rows
        seq_now = cat.last_seq(txn) + 1  # the event this transaction appends
        rc.index_cuts(cat, txn)  # once, in a store made before the cuts table
        for rec in new_runs:
            # new, or dropped or replaced and registered again (a code change reverted)
            if not rc.registered(cat, txn, rec.run_id):
                rec.created_seq = cat.last_seq(txn) + 1
                rec.dropped_seq = None
                rec.superseded_by = None
                rc.put_run(cat, txn, rec)
                # computed from scratch: every row it held before goes, those of an
                # instrument no task computes now too (its days removed since: `incbt
                # remove`), by an empty segment of this batch over every day
                # (a batch no later than this commit's results, later than its old ones)
                held = _instruments_held(cat, txn, rec.run_id) if batch else []
                rc.mark_cuts(cat, txn, [rc.ri_key(rec.run_id, i) for i in held])
                for inst in held:
                    seg = rc.Segment(rec.run_id, inst, batch, ALL_DAYS, ALL_DAYS - 1, 0, seq_now)
                    rc.put_segment(cat, txn, seg)
                    revived.add((rec.run_id, inst))
        for r in results:
            t = r.task
            where = batch if r.batch is None else r.batch  # the batch holding its rows
            sw = state_width(resolve_strategy(t.strategy, t.source, t.version))
            # days whose "recent" snapshot the retention rule drops now (no scan)
            before = (
                []
                if t.resume_day is None
                else cat.days_up_to(txn, t.instrument, t.resume_day, keep + RECENT_BLOCK)
            )
            drop = fallen_out(before, r.days, keep)
            final = finalize(r.states[:, -1, sw:]) if len(r.days) else None  # one call a task
            ok = [k for k, rid in enumerate(t.run_ids) if (rid, t.instrument) not in failed]
            # the first day whose stored results this task replaces: its first day, or,
            # where days of its instrument were removed, the day after its resume point
            from_day = t.first_day if t.cut_from is None else min(t.first_day, t.cut_from)
            redo = []  # runs computed before through a day this task recomputes
            for k in ok:
                prev = None if latest is None else latest.get((t.run_ids[k], t.instrument))
                if latest is None or (prev is not None and prev[0] >= from_day):
                    redo.append(t.run_ids[k])
            bad = sorted(set(range(len(t.run_ids))) - set(ok))
            if bad and len(r.days):  # the step failed: it will fail again on the same bars
                gone = [t.run_ids[k] for k in bad if (t.run_ids[k], t.instrument) in lost]
                rc.delete_snapshots_from_many(cat, txn, gone, t.instrument, ALL_DAYS)
                rc.mark_cuts(cat, txn, [rc.ri_key(rid, t.instrument) for rid in gone])
                for rid in gone:  # an empty segment over every day cuts all the old rows
                    rc.put_segment(
                        cat,
                        txn,
                        rc.Segment(rid, t.instrument, where, ALL_DAYS, t.last_day, 0, seq_now),
                    )
                    rc.delete_metrics(cat, txn, rid, t.instrument)
                failed_on = r.error_days or [None] * len(t.run_ids)
                rc.put_failures(
                    cat,
                    txn,
                    t.instrument,
                    [t.run_ids[k] for k in bad],
                    seq_now,
                    # through the day it failed on: a change after it cannot change that
                    # (QA 2026-12-07: a correction there retried a pair sure to fail again)
                    [min(t.last_day, failed_on[k] or t.last_day) for k in bad],
                    [str(r.errors[k]) for k in bad],
                )
            rc.delete_snapshots_from_many(cat, txn, redo, t.instrument, from_day)
            if from_day < t.first_day:  # stored results before its first day go (days
                for rid in redo:  # removed): the runs' portfolios change from there
                    redone[rid] = min(redone.get(rid, from_day), from_day)
                    if rid in first_of_run:
                        first_of_run[rid] = min(first_of_run[rid], from_day)
            # their older segments lose rows (SQL cutoffs)
            rc.mark_cuts(cat, txn, [rc.ri_key(rid, t.instrument) for rid in redo])
            if ok:
                rc.clear_failures(cat, txn, t.instrument, [t.run_ids[k] for k in ok])
                assert r.snap_days is not None and final is not None
                every = len(ok) == len(t.run_ids)
                rc.put_task(
                    cat,
                    txn,
                    t.instrument,
                    [t.run_ids[k] for k in ok],
                    r.snap_days,
                    r.states if every else r.states[ok],
                    drop,
                    (where, from_day, t.last_day, len(r.days), seq_now),
                    final if every else final[ok],
                )
            for k in ok:  # a run registered again, its segment in the batch of the
                rid = t.run_ids[k]  # empty one that cut its old rows: it cuts them itself
                if where == batch and (rid, t.instrument) in revived:
                    seg = rc.Segment(
                        rid, t.instrument, where, ALL_DAYS, t.last_day, len(r.days), seq_now
                    )
                    rc.put_segment(cat, txn, seg)
            # every segment computed, failed or not, as the command's report and the
            # bar-steps count them; the failed ones are counted apart (summary.errors);
            # a task that never ran computed none
            summary.segments += 0 if r.not_run else len(t.run_ids)
            summary.days += len(r.days) * len(t.run_ids)
        # runs computed here whose portfolio waits for a later commit: remember from which
        # day it changed, so that commit (even after a crash) refolds from there
        first_here: dict[str, int] = {}
        for r in results:
            for rid in r.task.run_ids:
                key = (rid, r.task.instrument)
                if key in lost:  # every row of the pair is gone, from its first day
                    first_here[rid] = ALL_DAYS
                elif key not in failed:
                    start = min(r.task.first_day, redone.get(rid, r.task.first_day))
                    first_here[rid] = min(first_here.get(rid, 2**31), start)
        # pairs whose last days were removed, with nothing after to compute: cut there
        for (rid, inst), valid in sorted((truncate or {}).items()):
            cut_rec = rc.get_run(cat, txn, rid)
            if cut_rec is None:
                continue
            cut = iso_to_day(cut_rec.start) if valid is None else valid + 1
            rc.delete_snapshots_from_many(cat, txn, [rid], inst, cut)
            rc.clear_failures(cat, txn, inst, [rid])  # a failure of days no longer there
            rc.mark_cuts(cat, txn, [rc.ri_key(rid, inst)])  # its older segments lose rows
            # an empty segment from the cut (its last day before its first: no row of it
            # is read), later than the pair's others: their rows from the cut on go
            rc.put_segment(cat, txn, rc.Segment(rid, inst, batch, cut, cut - 1, 0, seq_now))
            snap = None if valid is None else rc.latest_snapshot(cat, txn, rid, inst, cut)
            if snap is None:  # no day left: no metrics, as a store that never held them
                rc.delete_metrics(cat, txn, rid, inst)
            else:
                sw = state_width(_strategy_for(cut_rec))
                rc.put_metrics(cat, txn, rid, inst, finalize(snap[1][sw:]))
            rc.portfolio_dirty_from(cat, txn, rid, cut)
            summary.truncated += 1
        for rid, day in sorted(first_here.items()):
            if rid not in by_run:
                rc.portfolio_dirty_from(cat, txn, rid, day)
        prev_days: dict[tuple[str, int], int | None] = {}  # a memo shared by the runs
        reader = DailyRows(root, cat, txn, sorted(by_run))  # stored rows, shared too
        # each run's portfolio snapshot days, in one walk (no run below touches another's)
        pf_kept = rc.snapshot_days_many(cat, txn, sorted(by_run), PORTFOLIO)
        for rid, fresh in sorted(by_run.items()):
            run_rec = rc.get_run(cat, txn, rid)
            assert run_rec is not None
            dirty = rc.portfolio_dirty(cat, txn, rid)
            if dirty is not None:
                first_of_run[rid] = min(first_of_run[rid], dirty)
                rc.set_portfolio_dirty(cat, txn, rid, None)
            run_insts = instruments_of(run_rec, known)
            capital = portfolio_capital(run_rec, run_insts)
            pf_from, days, acc = portfolio_update(
                root,
                cat,
                txn,
                rid,
                capital,
                first_of_run[rid],
                fresh,
                run_insts,
                prev_days,
                (folded or {}).get(rid),
                reader=reader,
            )
            kept = pf_kept[rid]
            before = [d for d in kept if d < pf_from][-(keep + RECENT_BLOCK) :]
            rc.delete_snapshots(cat, txn, rid, PORTFOLIO, [d for d in kept if d >= pf_from])
            mask = retained(days, keep)
            rc.put_snapshots(cat, txn, rid, PORTFOLIO, days[mask], acc[mask])
            rc.delete_snapshots(cat, txn, rid, PORTFOLIO, fallen_out(before, days, keep))
            last = acc[-1] if len(days) else None
            if last is None:  # no day after the snapshot it resumed from (days removed)
                snap = rc.latest_snapshot(cat, txn, rid, PORTFOLIO, pf_from)
                if snap is not None and snap[1][ACC_WIDTH] == capital:
                    last = snap[1]
            if last is None:
                # no instrument holds a day (each pair failed): no portfolio row, as in a
                # fresh store (QA 2026-12-06: a row of zeros topped the leaderboard)
                rc.delete_metrics(cat, txn, rid, PORTFOLIO)
                continue
            m = finalize(last)
            # portfolio fills, fees, turnover: the instruments' totals, summed in name
            # order, one after another from 0 (a cumulative sum does exactly that)
            per_inst = rc.instrument_metrics(cat, txn, rid)
            rows = per_inst[:, 3:6] if len(per_inst) else np.zeros((0, 3))
            m[3:6] = np.cumsum(np.vstack([np.zeros((1, 3)), rows]), axis=0)[-1]
            rc.put_metrics(cat, txn, rid, PORTFOLIO, m)
        superseded = []
        for old_id, new_id in replaced:  # old results stay visible until now
            old_rec = rc.get_run(cat, txn, old_id)
            if old_rec is not None:
                old_rec.superseded_by = new_id
                rc.put_run(cat, txn, old_rec)
                superseded.append(old_id)
            new_rec = rc.get_run(cat, txn, new_id)
            if new_rec is not None and new_rec.replacing is not None:  # complete: shown
                new_rec.replacing = None
                rc.put_run(cat, txn, new_rec)
        # never updated again: their state goes (a revert of the code registers one again,
        # computed from scratch; found 2026-12-05: it came back as it was, superseded by
        # the run it superseded, and both were hidden for good), all in one pass
        forget_results(cat, txn, superseded)
        summary.runs = len(computed)
        seq = cat.append_event(
            txn,
            kind,
            command,
            {
                "batch": batches[0][0] if batches else None,  # none: every task failed
                **({"last_batch": batches[-1][0]} if len(batches) > 1 else {}),
                "runs": sorted(computed)[:50],
                "n_runs": len(computed),
                "segments": summary.segments,
                "failed": len(summary.errors),
                **({"not_run": len(summary.not_run)} if summary.not_run else {}),
                "bars_processed": summary.bars_processed,
                "daily_rows": summary.daily_rows,
                "fills": summary.fills,
                "errors": summary.errors[:20],
                **({"replaced": [list(x) for x in replaced[:20]]} if replaced else {}),
                **({"n_replaced": len(replaced)} if len(replaced) > 20 else {}),
                **({"truncated": summary.truncated} if summary.truncated else {}),
            },
        )
        assert seq == seq_now
        for b, dpath, fpath in batches:
            record: dict[str, Any] = {"seq": seq, "daily": dpath, "fills": fpath}
            if group is not None and group != b:
                record["group"] = group
            rc.put_batch(cat, txn, b, record)
        cat.set_pending(txn, list(next_pending))
        return seq

    summary.seq = cat.env.write(txn_fn)
    return summary


def preload_kernels(records: Sequence[rc.RunRecord]) -> None:
    """Start loading the kernels of these runs' strategies on a thread of their own
    (:func:`incbt.engine.kernel.preload`), so that a command's first kernel call does
    not wait ~0.3 s for them after its ingest and plan; a strategy that does not
    resolve is left for the command to report."""
    from incbt.engine.kernel import preload

    work, seen = [], set()
    for rec in records:
        if (rec.strategy, rec.source, rec.code_version) in seen:
            continue
        seen.add((rec.strategy, rec.source, rec.code_version))
        with contextlib.suppress(Exception):
            strat = resolve_strategy(rec.strategy, rec.source, rec.code_version)
            work.append((strat, params_from_dict(strat, rec.params)))
    if work:
        preload(work)


def bring_up_to_date(
    store: Any,
    records: Sequence[rc.RunRecord],
    *,
    command: str,
    kind: str = "backtest",
    progress: Reporter = NULL,
    dry_run: bool = False,
    stale_out: list[Staleness] | None = None,
    replaced: Sequence[tuple[str, str]] = (),
    hypothetical: Sequence[tuple[str, int, int, int, int]] = (),
    executor: Executor | None = None,
    commit_bars: int | None = None,
    retry_failed: bool = False,
) -> UpdateReport:
    """Plan, compute and commit whatever these runs lack, under the write lock.

    Ordinary runs (and the bases of forks) first; then forks, whose pairs are
    first materialized from their base (``incbt.fork``) where needed.
    ``replaced``: (old run, new run) pairs; the old run is marked superseded in
    the same transaction that commits the new run's results. ``retry_failed``: compute
    again the pairs whose strategy failed before (:func:`plan_runs`).
    """
    from incbt import fork as fork_mod

    t0 = time.perf_counter()
    report = UpdateReport(runs=len(records))
    plain = [r for r in records if not r.fork]
    forks = [r for r in records if r.fork]
    # a dry run (status) reads the catalog only: it never waits for a writer, whose
    # commits it may see part of (each read is one state; the plan, an estimate)
    with contextlib.nullcontext() if dry_run else store.lock():
        if not dry_run:
            with store.catalog.env.read() as txn:
                report.since = store.catalog.last_seq(txn)
            _revive(store, records)
            if kind != "update":
                _show_asked(store, records, replaced)
        if forks:  # a fork needs its base current through D-1, and the base's base...
            have = {r.run_id for r in records}
            todo = list(forks)
            with store.catalog.env.read() as txn:
                while todo:
                    base = rc.get_run(store.catalog, txn, (todo.pop().fork or {})["base"])
                    if base is not None and base.run_id not in have:
                        have.add(base.run_id)
                        # a base that is a fork is brought up to date as a fork (it was
                        # planned as a plain run of its parameters, from its first day
                        # where a correction hit it before D: found 2026-12-05)
                        (forks if base.fork else plain).append(base)
                        if base.fork:
                            todo.append(base)

        # each replacement completes in the phase that computes its new run: a fork's in
        # its fork level's (QA 2026-12-06: the plain runs' first commit marked an edited
        # fork replaced, by a run not made yet; killed there, the fork was lost for good)
        def pairs_of(level: Sequence[rc.RunRecord]) -> list[tuple[str, str]]:
            ids = {r.run_id for r in level}
            return [(o, n) for o, n in replaced if n in ids]

        _phase(
            store,
            report,
            plain,
            command,
            kind,
            progress,
            dry_run,
            stale_out,
            pairs_of(plain),
            hypothetical,
            executor=executor,
            commit_bars=commit_bars,
            retry_failed=retry_failed,
        )
        # with a dry run's instruments new in its files, as plan_runs takes them (found
        # by QA 2026-12-05: a fork's days of a new instrument before D were counted as
        # computed, where they are copied from its base)
        known = sorted(set(store.instruments()) | {h[0] for h in hypothetical})
        states: dict = {}  # bases' states asked by the levels' materializing (fork.state_at)
        # a dry run's pairs of the levels before, failed as made / hanging on a retry: a
        # fork of them fails or hangs with them (QA 2026-12-07: counted as computed)
        upstream: tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]] = ({}, {})
        for level in _fork_levels(forks):  # each after the forks it is a fork of
            assume: dict[tuple[str, str], int] = {}
            doomed: dict[tuple[str, str], str] = {}  # a dry run's pairs failed as made
            after: dict[tuple[str, str], str] = {}  # a dry run's pairs if a retry succeeds
            built = []
            if dry_run:
                assume, doomed, after = _as_made(
                    store, level, known, hypothetical, retry_failed, upstream
                )
                upstream[0].update(doomed)
                upstream[1].update(after)
            for f in level if not dry_run else ():
                need = fork_mod.needs_materializing(
                    store, f, instruments_of(f, known), retry_failed=retry_failed
                )
                if need and stale_out is not None:
                    # why its pairs compute, read before their rows up to D-1 are made
                    # again: after, they look like days new after D-1 (QA 2026-12-06:
                    # an update said "5 new day(s) after ..." where its dry run and
                    # status said "event 6 changed 2024-01-03")
                    why: list[Staleness] = []
                    plan_runs(store, [f], why, retry_failed=retry_failed)
                    stale_out += [w for w in why if w.instrument in need]
                built += fork_mod.materialize(store, f, need, memo=states)
            if built:
                new = _needs_record(store, level)
                commit(store, built, new, command, "fork")
            _phase(
                store,
                report,
                level,
                command,
                kind,
                progress,
                dry_run,
                stale_out,
                pairs_of(level),
                hypothetical,
                assume,
                doomed,
                executor=executor,
                commit_bars=commit_bars,
                retry_failed=retry_failed,
                after_retry=after,
            )
    report.seconds = time.perf_counter() - t0
    return report


def _as_made(
    store: Any,
    level: Sequence[rc.RunRecord],
    known: Sequence[str],
    hypothetical: Sequence[tuple],
    retry_failed: bool,
    upstream: tuple[Mapping[tuple[str, str], str], Mapping[tuple[str, str], str]] = ({}, {}),
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """A fork level's pairs as materializing them would leave them, none made: (run,
    instrument) -> the day through which it would be valid (L); -> why it would fail (its
    base's pair failed, not retried first); -> why it computes only if its base's pair,
    failed before and computed again first, succeeds (:func:`incbt.fork.base_failed`): a
    dry run's plan of the level (``upstream``: those two of the levels before it)."""
    from incbt import fork as fork_mod

    assume: dict[tuple[str, str], int] = {}
    doomed: dict[tuple[str, str], str] = {}
    after: dict[tuple[str, str], str] = {}
    for f in level:
        need = fork_mod.needs_materializing(
            store, f, instruments_of(f, known), hypothetical, retry_failed=retry_failed
        )
        fails, retried = fork_mod.base_failed(
            store, f, need, hypothetical, retry_failed=retry_failed, upstream=upstream
        )
        assume.update({(f.run_id, i): day for i, day in need.items()})
        doomed.update({(f.run_id, i): why for i, why in fails.items()})
        after.update({(f.run_id, i): why for i, why in retried.items()})
    return assume, doomed, after


def _revive(store: Any, records: Sequence[rc.RunRecord]) -> None:
    """Runs replaced after a code change that come back (the code was reverted) are
    computed from scratch: a store made before 2026-12-05 kept a replaced run's state,
    which its rows no longer match once a compaction dropped them (those of a gone
    run). Its state goes before it is planned (since then, it goes when it is
    replaced: :func:`forget_results`)."""
    cat = store.catalog
    with cat.env.read() as txn:
        back = [
            r.run_id
            for r in records
            # a record read from the catalog is a live run (an update's); only one made
            # now (registered by a command, or an update's replacement) can come back
            if not r.created_seq
            and (was := rc.get_run(cat, txn, r.run_id)) is not None
            and was.superseded_by is not None
            and rc.has_pairs(cat, txn, r.run_id)
        ]
    if back:

        def txn_fn(txn: Any) -> None:
            forget_results(cat, txn, back)

        cat.env.write(txn_fn)


def _show_asked(
    store: Any, records: Sequence[rc.RunRecord], replaced: Sequence[tuple[str, str]]
) -> None:
    """A replacement an update left incomplete (``RunRecord.replacing``: not shown yet)
    that a command asks for by its parameters (a backtest or sweep of the new code) is
    shown from now on, as a run that command made: its results are what was asked for.
    The run it replaces stays shown too, until an update completes the replacement."""
    cat = store.catalog
    completing = {new for _, new in replaced}
    with cat.env.read() as txn:
        asked = [
            rec
            for r in records
            if r.run_id not in completing
            and (rec := rc.get_run(cat, txn, r.run_id)) is not None
            and rec.replacing is not None
        ]
    if asked:

        def txn_fn(txn: Any) -> None:
            for rec in asked:
                rc.put_run(cat, txn, dataclasses.replace(rec, replacing=None))

        cat.env.write(txn_fn)


def fork_depths(records: Sequence[rc.RunRecord]) -> dict[str, int]:
    """Each run's depth among ``records``: 0 for a plain run (or a fork whose base is not
    among them), 1 for a fork of one of depth 0, and so on."""
    by_id = {r.run_id: r for r in records}
    out: dict[str, int] = {}
    for rec in records:
        r, depth, seen = rec, 0, {rec.run_id}
        while r.fork and r.fork["base"] in by_id and r.fork["base"] not in seen:
            r = by_id[r.fork["base"]]
            seen.add(r.run_id)
            depth += 1
        out[rec.run_id] = depth
    return out


def _fork_levels(forks: Sequence[rc.RunRecord]) -> list[list[rc.RunRecord]]:
    """Forks in levels, each after the levels holding their bases: a fork of a plain
    run first, then a fork of one of those, and so on."""
    depth = fork_depths(forks)
    levels: dict[int, list[rc.RunRecord]] = defaultdict(list)
    for f in forks:
        levels[depth[f.run_id]].append(f)
    return [levels[k] for k in sorted(levels)]


# a new run's instruments summed into its portfolio's pnl once this many wait (_phase)
FOLD_EVERY = 32
DEFAULT_COMMIT_BARS = 200_000_000  # bar-steps between commits (a few seconds of work)
# ... or this many seconds since the last commit, whichever comes first: a strategy far
# slower than sma_cross (breakout at lookbacks in the thousands: ~0.5 M bar-steps/s)
# took minutes to reach the bar-steps, and a Ctrl-C before them kept nothing (QA
# 2026-12-06: 70% of a sweep computed, 0 pairs committed). Commits are in plan order
# wherever they fall: the results do not depend on them.
COMMIT_SECONDS = 10.0

# (run, instrument) pairs the running command committed, and planned, in its computing
# phases so far: what an interrupted command says it kept (cli._interrupted)
COMMITTED = {"pairs": 0, "planned": 0}
# What waits for a commit is bounded as well, so that memory does not grow with the
# universe: the results not yet committed (:func:`held_bytes`: their retained snapshots
# and daily pnl) commit once they reach, per run on an instrument, an eighth of the bars
# of the plan's largest instrument (which a task holds anyway while it runs), or
# COMMIT_FLOOR if that is more (a short update's results are tiny next to the warm-up
# bars it reads). What grows with them is about 1.5 times as much again: the catalog
# pages their transaction dirties (which LMDB keeps for reuse after it) and the rows the
# batch's files buffer (sma_cross over 100 days, per instrument: 13 KB held, 15 KB of
# LMDB pages, 6 KB of daily rows). A command's pieces count as one batch to compaction.
# A quarter let the peak RSS of the seed's whole history (sma_cross, 5 years) grow by
# 22.3-24.4 MiB from 50 to 500 instruments, one instrument's bars (22.5 MiB); an eighth,
# 18.2 MiB (a sixteenth 16.2); the floor keeps 100-day histories' commits as they were
# (a quarter of 39,000 bars, 468 KB, against 512 KB).
COMMIT_SHARE = 8
COMMIT_FLOOR = 512 << 10
BAR_BYTES = 48  # a bar in memory: ts and five float64 columns


def commit_budget(tasks: Sequence[SegmentTask]) -> int:
    """Bytes of uncommitted results (:func:`held_bytes`) after which a plan commits."""
    bars: dict[str, int] = defaultdict(int)
    runs: dict[str, int] = defaultdict(int)
    for t in tasks:
        bars[t.instrument] = max(bars[t.instrument], t.bars + t.history_bars)
        runs[t.instrument] += len(t.run_ids)
    one = max(bars.values(), default=0) * BAR_BYTES
    return max(runs.values(), default=1) * max(COMMIT_FLOOR, one // COMMIT_SHARE)


def held_bytes(r: TaskResult) -> int:
    """The bytes a slimmed result keeps until its commit."""
    assert r.snap_days is not None
    return r.states.nbytes + r.snap_days.nbytes + r.days.nbytes + r.daily["pnl"].nbytes


def _phase(
    store: Any,
    report: UpdateReport,
    records: Sequence[rc.RunRecord],
    command: str,
    kind: str,
    progress: Reporter,
    dry_run: bool,
    stale_out: list[Staleness] | None,
    replaced: Sequence[tuple[str, str]],
    hypothetical: Sequence[tuple],
    assume: Mapping[tuple[str, str], int] | None = None,
    doomed: Mapping[tuple[str, str], str] | None = None,
    executor: Executor | None = None,
    commit_bars: int | None = None,
    retry_failed: bool = False,
    after_retry: Mapping[tuple[str, str], str] | None = None,
) -> None:
    """Plan these runs, compute, and commit in plan order, in batches (``assume`` and
    ``doomed``: a dry run's fork pairs as their materializing would leave them;
    ``retry_failed``: as for :func:`plan_runs`; ``after_retry``: a dry run's fork pairs
    computed only if their base's failed pair, computed again first, succeeds).

    A batch commits after ``commit_bars`` bar-steps, or once the results waiting for
    it reach :func:`commit_budget`: memory does not grow with the universe. A crash
    loses at most the batch in flight: the next call plans only what is missing. A
    run's portfolio is computed in the commit that completes it.
    """
    if not records:
        return
    new = [] if dry_run else _needs_record(store, records)
    if new and kind == "backtest":  # made by the user now: said before any work (a sweep
        # checks its runs before it writes its record: incbt.sweep)
        from incbt.contract import check_new_runs

        check_new_runs(store, new, store.instruments())
    # in this process: kernels load while the plan is made where a run is new (it
    # computes), else once the plan has work: a command with nothing to do (a backtest
    # run again, a finished sweep resumed) loads none, which spared it ~20-30 ms of its
    # ~0.3 s and up to ~37 MiB (2026-12-05)
    if new and executor is None:
        preload_kernels(records)
    p = plan_runs(
        store,
        records,
        stale_out,
        hypothetical=hypothetical,
        assume_through=assume,
        assume_failed=doomed,
        progress=progress,
        since=report.since,
        retry_failed=retry_failed,
    )
    report.skipped_failed += p.skipped_failed
    if after_retry:
        report.depends_on_retry.update(
            (key, after_retry[key])
            for t in p.tasks
            for rid in t.run_ids
            if (key := (rid, t.instrument)) in after_retry
        )
    # a fork's pairs that failed with its base's in an earlier phase of this call (its
    # materialization): said as this call's failures, not as "failed before" (QA)
    report.errors += p.failed_now
    if report.plan is None:
        report.plan = p
    else:
        report.plan.tasks.extend(p.tasks)
        report.plan.truncate.update(p.truncate)
    report.truncated += len(p.truncate)
    report.tasks += len(p.tasks)
    report.segments += p.segments
    # an "all" run whose universe grew by instruments without a bar in its range has
    # nothing to compute, but its portfolio's capital (notional x instruments) changed
    computing = {rid for t in p.tasks for rid in t.run_ids}
    cut_only = sorted({rid for rid, _ in p.truncate} - computing)
    refold = _capital_changed(
        store, records, computing | set(cut_only), {h[0] for h in hypothetical}
    )
    report.refolds += refold
    if p.truncate and not dry_run:
        # the results of pairs whose last days were removed go first, in a commit of
        # their own; the runs with nothing else to compute refold their portfolio in it
        report.commit = commit(
            store,
            [],
            [],
            command,
            kind,
            portfolio={rid: {} for rid in cut_only},
            truncate=p.truncate,
        )
        report.commits += 1
    if dry_run:
        report.bars_processed += p.bars
        if p.tasks:  # where they would run (deciding forks nothing)
            report.executor = (executor or local_executor(store, p.tasks)).name
        return
    if p.tasks and executor is None:  # loading already where a run is new: no-op then
        preload_kernels(records)
    if not p.tasks:
        if new or refold or replaced:  # a new run of the changed code may exist already
            report.commit = commit(
                store, [], new, command, kind, replaced, portfolio={rid: {} for rid in refold}
            )
            report.commits += 1
        # a compaction a command killed after its last commit left undone (QA 2026-12-06:
        # it waited for the next commit of results)
        report.compactions += _compact(store, command)
        return

    keep = int(store.settings["snapshot_keep_days"])
    limit = commit_bars or DEFAULT_COMMIT_BARS
    ex = executor or local_executor(store, p.tasks)
    report.executor = ex.name
    par = ex.parallelism()
    if par > 1:  # balance by bars: enough similar tasks for every worker
        p = split_tasks(p, max(p.bars // (4 * par), 5_000_000))
    budget = commit_budget(p.tasks)
    remaining: dict[str, int] = defaultdict(int)
    for t in p.tasks:
        for rid in t.run_ids:
            remaining[rid] += 1
    gathered: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    # new runs computed whole here (no stored rows, no snapshot) sum their instruments'
    # pnl as the results arrive, in name order (plan order), into their entry PORTFOLIO:
    # what waits for the run's last commit is then its days, not every instrument-day
    streamed = {r.run_id for r in new} - {
        rid for t in p.tasks if t.resume_day is not None for rid in t.run_ids
    }
    folded: dict[str, dict[str, int]] = defaultdict(dict)  # run -> instrument -> first day
    # runs whose portfolio must refold even if every pair of theirs fails here: those a
    # commit marked (the cut of removed days just above, a command cut short): their
    # completing commit refolds it (QA 2026-12-07: a failed pair's run whose days were
    # removed kept its old portfolio row for good, and verify said it differed)
    with store.catalog.env.read() as txn:
        marked = rc.dirty_runs(store.catalog, txn)

    def fold(rid: str) -> None:
        g = gathered[rid]
        last = max(folded[rid], default="")
        for inst, (d, _) in g.items():
            if inst != PORTFOLIO:
                if inst <= last:  # plan order is instrument order
                    raise AssertionError(f"run {rid}: {inst} arrived after {last}")
                if len(d):
                    folded[rid][inst] = int(d[0])
        gathered[rid] = {PORTFOLIO: portfolio_pnl([(i, d, x) for i, (d, x) in g.items()])}

    finished: set[str] = set()  # runs complete in an earlier commit of this phase
    pending: list[TaskResult] = []
    bar = progress.task("bar-steps", p.bars)
    # committed as they come: a run is complete only at its last instrument, so a count
    # of runs stayed at 0 while most of the work was committed (QA 2026-12-06)
    planned = sum(len(t.run_ids) for t in p.tasks)
    pairs_bar = progress.task("(run, instrument) pairs committed", planned)
    COMMITTED["planned"] += planned
    todo_replaced = list(replaced)
    files: BatchFiles | PartFiles | None = None
    group: int | None = None  # the phase's first batch: its pieces count as one to compact
    taken = 0  # results taken from the executor
    # an executor whose workers write the result rows (Ray, worker processes: see
    # incbt.execute.Executor): the driver encodes none, and publishes and commits
    # their batches, numbered from here in plan order
    parts: dict[str, int] = {}
    if getattr(ex, "writes_parts", False):
        group = parts["parts"] = next_clean_batch(store)

    def flush() -> None:
        nonlocal new, pending, todo_replaced, files
        # complete: every task of the run is in; done: those with a portfolio to fold (a
        # run whose every pair failed, with no rows before, has none: no row, as fresh)
        complete = {rid for rid, n in remaining.items() if n == 0} - finished
        finished.update(complete)
        done = {rid for rid in complete if rid in gathered}
        # the new run complete now, or with nothing to compute (made before, up to date)
        now = [(o, n) for o, n in todo_replaced if n in complete or n not in remaining]
        todo_replaced = [x for x in todo_replaced if x not in now]
        n_pairs = sum(len(r.task.run_ids) for r in pending)
        # a Ctrl-C or SIGTERM during the commit is raised once it is counted: one landing
        # as the commit ended said half of what was kept (QA 2026-12-07)
        with deferred_stops():
            c = commit(
                store,
                pending,
                new,
                command,
                kind,
                now,
                portfolio={rid: gathered.pop(rid) for rid in sorted(done)},
                folded={rid: folded.pop(rid) for rid in sorted(done) if rid in folded},
                latest=p.latest,
                files=files,
                group=group,
                # the next piece's files, if there is one: listed as pending in this commit
                next_pending=(
                    batch_paths(last_batch + 1) if taken < len(p.tasks) and not parts else ()
                ),
            )
            files = None
            COMMITTED["pairs"] += n_pairs
        pairs_bar.advance(n_pairs)
        report.commit = c
        report.bars_processed += c.bars_processed
        report.errors += c.errors
        report.not_run += c.not_run
        report.commits += 1
        new, pending = [], []

    work = held = 0
    since = time.monotonic()  # the last commit (or the phase's start)
    last_batch = 0
    try:
        for r in ex.map(store, p.tasks, keep, bar.advance, p.latest, **parts):
            taken += 1
            if files is None:
                if parts:
                    files = PartFiles(store.path, store.catalog)
                elif group is None:  # the phase's first piece: clean up after a crashed writer
                    files = open_batch(store)
                    group = files.batch
                else:  # the commit before listed its files as pending
                    files = BatchFiles(store.path, store.catalog, last_batch + 1, listed=True)
                last_batch = files.batch
            files.add(r)  # written as it arrives: only the catalog's part waits for the commit
            pending.append(r.slim())
            work += r.task.work
            held += held_bytes(r)
            lost = _lost_runs(r, p.latest)
            for k, rid in enumerate(r.task.run_ids):
                remaining[rid] -= 1
                if r.errors[k] is None:
                    gathered[rid][r.task.instrument] = (r.days, r.daily["pnl"][k])
                    if rid in streamed and len(gathered[rid]) > FOLD_EVERY:
                        fold(rid)
                elif rid in lost or rid in marked:  # its rows are gone, or its portfolio
                    gathered[rid]  # noqa: B018 - must refold: creates the run's entry
            # a worker's batch is committed whole: at its last result, not in the middle
            due = work >= limit or held >= budget or time.monotonic() - since >= COMMIT_SECONDS
            if due and (r.batch is None or r.part is not None):
                flush()
                work = held = 0
                since = time.monotonic()
        if pending or new:
            flush()
        here = getattr(ex, "ran_here", 0)
        if here:  # a worker died and the rest ran here (QA 2026-12-06: "in 2 processes")
            report.executor = f"{ex.name}, then in this process after a worker died"
    finally:
        if files is not None:  # interrupted: the next writer removes the unfinished files
            files.abort()
    if refold:
        report.commit = commit(store, [], [], command, kind, portfolio={r: {} for r in refold})
        report.commits += 1
    report.compactions += _compact(store, command)  # once, after the last commit
    with contextlib.suppress(OSError):  # the staging folder, empty now (store/README.md)
        os.rmdir(os.path.join(store.path, "tmp"))
    bar.done()
    pairs_bar.done()


def _compact(store: Any, command: str) -> int:
    """Compact the results tables after a command's last commit: how many compactions.

    Housekeeping after the work is committed: where the disk is full (or another error
    of the machine's stops it), the command is not failed for it (QA 2026-12-06: a
    backtest committed, then its compaction failed for want of space, and it exited 1,
    printing nothing); it warns, and the next command that writes results compacts."""
    from incbt.results.compact import compact_all

    try:
        return len(compact_all(store, command))
    except (OSError, SetupError) as exc:
        import warnings

        mapped = map_dependency_error(exc, "compaction")
        full = getattr(mapped, "full_disk", None)
        # not its fix, which would run the command again (QA 2026-12-07)
        why = f"the disk is full{full[0]}" if full is not None else str(mapped)
        warnings.warn(
            f"the results are committed, but merging the result files (compaction) "
            f"failed: {why}; the next command that writes results merges them",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0


def _capital_changed(
    store: Any, records: Sequence[rc.RunRecord], computing: set[str], arriving: set[str]
) -> list[str]:
    """Runs not computed now whose portfolio was folded with another capital.

    ``arriving``: instruments a dry run's ingest would add.
    """
    known = sorted(set(store.instruments()) | arriving)
    out = []
    with store.catalog.env.read() as txn:
        for rec in records:
            if rec.run_id in computing:
                continue
            snap = rc.latest_snapshot(store.catalog, txn, rec.run_id, PORTFOLIO)
            capital = portfolio_capital(rec, instruments_of(rec, known))
            if snap is not None and snap[1][ACC_WIDTH] != capital:
                out.append(rec.run_id)
    return sorted(out)


def _needs_record(store: Any, recs: Sequence[rc.RunRecord]) -> list[rc.RunRecord]:
    """The runs not in the catalog yet, or dropped there (registering such a one again
    revives it), in one read of the catalog."""
    with store.catalog.env.read() as txn:
        return [r for r in recs if not rc.registered(store.catalog, txn, r.run_id)]


def _from(start: str) -> str:
    return "from the first bar" if start == FROM_FIRST_BAR else f"from {start}"


def last_bar_days(store: Any, instruments: Sequence[str]) -> dict[str, int]:
    """Each instrument's last day with bars (instruments without any are left out)."""
    cat = store.catalog
    with cat.env.read() as txn:
        return {i: d[0] for i in instruments if (d := cat.days_up_to(txn, i, _LAST_DAY, 1))}


def waiting_for_bars(store: Any) -> list[tuple[str, str]]:
    """The registered runs (not replaced or dropped) that start after the last day with
    bars of their instruments, as (run id, start): up to date, with no rows until bars
    reach their start."""
    known = store.instruments()
    last = last_bar_days(store, known)
    with store.catalog.env.read() as txn:
        recs = [r for r in rc.runs(store.catalog, txn) if not r.gone]
    out = []
    for rec in recs:
        days = [last[i] for i in instruments_of(rec, known) if i in last]
        if not days or rec.start > day_to_iso(max(days)):
            out.append((rec.run_id, rec.start))
    return out


def _stale_note(rows: Sequence[Any]) -> str:
    """A Run's repr's word on rows of ``Run.stale`` ("" when there are none)."""
    if not rows:
        return ""
    insts = {r.instrument for r in rows if r.instrument}
    days = [r.from_day for r in rows if r.from_day]
    where = f" ({len(insts)} instrument(s) from {min(days)})" if insts and days else ""
    if rows[0].reason.startswith("cannot recompute"):  # an update cannot (QA 2026-12-06)
        return f"; STALE{where}: {rows[0].reason} (fix that, then store.update())"
    return f"; STALE{where}: {rows[0].reason} (store.update() brings it up to date)"


def _run_again(store: Any, run_id: str) -> Run:
    """A pickled Run, in the process that unpickles it."""
    return store.run(run_id)  # type: ignore[no-any-return]


def _name_given(instrument: Any) -> None:
    """Refuse an ``instrument=`` that is not a name (QA 2026-12-07: 123 was "no day of 123",
    '' "the store holds no bars of ''")."""
    if not isinstance(instrument, str) or not instrument.strip():
        raise UsageError(f"instrument: give an instrument's name, a string, not {instrument!r}")


def stats_window(start: Any = None, end: Any = None) -> dict[str, str]:
    """The stats query's ``start`` and ``end`` given (its window of days, inclusive),
    from dates as YYYY-MM-DD or ``datetime.date``; one left out (None) is not in the
    dict: the query's default takes it (every day). A window ending before it starts is
    refused."""
    lo = None if start is None else given_day(start, "start")
    hi = None if end is None else given_day(end, "end")
    if lo is not None and hi is not None and hi < lo:
        raise UsageError(
            f"the window ends ({day_to_iso(hi)}) before it starts ({day_to_iso(lo)}): give "
            "start on or before end"
        )
    return {k: day_to_iso(d) for k, d in (("start", lo), ("end", hi)) if d is not None}


class Run:
    """A run in a store: its definition and its tables, one attribute away."""

    def __init__(self, store: Any, record: rc.RunRecord, report: UpdateReport | None = None):
        self.store = store
        self.record = record
        self.report = report

    @property
    def run_id(self) -> str:
        """The run's id: a hash of its strategy, code version, parameters, execution
        parameters, start and universe (the same inputs, the same id)."""
        return self.record.run_id

    def _q(self, sql: str, **params: Any) -> pa.Table:
        from incbt.query import run_sql_fresh

        self._reading()
        # over the files of this run's rows (QA 2026-12-07: every results file, a run's
        # tables slower with every run the store held)
        return run_sql_fresh(
            lambda: self.store._session(None, sql, [self.run_id]),
            sql,
            {"r": self.run_id, **params},
        )

    def _reading(self) -> rc.RunRecord | None:
        """:meth:`_here`, for a read of the run's tables: a run replaced after its
        strategy's code changed has none, which a warning says with the run that holds
        its results now (QA 2026-12-06: its ``.portfolio`` was {} without a word)."""
        rec = self._here()
        if rec is not None and rec.superseded_by:
            from incbt.store import _outside

            # the user's line, however deep the read (QA 2026-12-06: runs.py's line)
            warnings.warn(self._replaced(rec), RunReplacedWarning, stacklevel=_outside())
        return rec

    def _replaced(self, rec: rc.RunRecord) -> str:
        with self.store.catalog.env.read() as txn:
            now = rc.follow(self.store.catalog, txn, self.run_id)
        new = rec.superseded_by if now is None else now.run_id
        return (
            f"the run was replaced by run {new} when its strategy's code changed (an update "
            f"recomputed it with the new code): store.run({new!r}) holds its results"
        )

    def _here(self) -> rc.RunRecord | None:
        """The run's record as the store holds it now (None: not committed yet); refused
        (NotFoundError) for a run dropped since this object was made: its tables read as
        empty and its ``stale`` as up to date (QA 2026-12-06), where ``store.run`` says it
        was dropped. (A run replaced after a code change says so in its repr and report,
        and its tables are those of the new run's absence.)"""
        cat = self.store.catalog
        with cat.env.read() as txn:
            rec = rc.get_run(cat, txn, self.run_id)
        if rec is not None and rec.dropped_seq is not None:
            raise rc.dropped(rec)
        return rec

    def _metric_rows(self, most: int | None = None) -> pa.Table:
        """The run's metric rows as the ``metrics`` table holds them (portfolio first),
        at most ``most`` of them; none for an unknown or replaced run."""
        rec = self._reading()
        cat = self.store.catalog
        with cat.env.read() as txn:
            gone = rec is None or rec.gone
            cols = rc.run_metrics(cat, txn, self.run_id, 0 if gone else most)
        return metrics_table(*cols)

    @property
    def metrics(self) -> pa.Table:
        """The portfolio row (instrument NULL) first, then each instrument's, by name: the
        rows of ``SELECT * FROM metrics WHERE run_id = ... ORDER BY scope DESC,
        instrument``, read from the catalog alone (SQL builds every run's rows first:
        ~140 ms a query with 100 runs x 500 instruments, against a few ms)."""
        return self._metric_rows()

    @property
    def portfolio(self) -> dict[str, float]:
        """The portfolio's metrics ({} before its first commit)."""
        t = self._metric_rows(most=1)
        if not t.num_rows or t.column("scope")[0].as_py() != "portfolio":
            return {}
        return {m: t.column(m)[0].as_py() for m in METRICS}

    @property
    def stale(self) -> list[Any]:
        """Why the run's stored results are not those of the store's data and code now:
        ``incbt status``'s rows of it (``StaleRow``: instrument, reason, from_day, bars;
        an instrument "" is the whole run), [] when it is up to date. ``store.update()``
        brings it up to date. Planned for this run alone, each time it is read."""
        from incbt.update import run_staleness

        return run_staleness(self.store, self._here() or self.record)

    def why_empty(self) -> str | None:
        """Why the run has no results though it is up to date (None: it has some, or it
        is waiting on nothing data can fix): its instruments have no bars, or none on or
        after its start. A later ``update`` computes it once such bars arrive."""
        rec = self._here()
        if rec is not None and rec.superseded_by:  # QA 2026-12-06: None said nothing
            return self._replaced(rec)
        if self._metric_rows(most=1).num_rows:
            return None
        with self.store.catalog.env.read() as txn:
            failed = rc.run_failures(self.store.catalog, txn, self.run_id)
            registered = rc.registered(self.store.catalog, txn, self.run_id)
        known = self.store.instruments()
        if not registered:  # a dry run's (QA 2026-12-06: None, as for a run with rows)
            # what its data says first (QA 2026-12-07: a dry run of a run starting after
            # the last bar was told about interrupted sweeps)
            return self._no_bars_for(known) or (
                "it is not registered: a dry run computes and stores nothing (the same call "
                "without dry_run computes it), and a sweep interrupted before this run's "
                "first commit holds it in its record only (resume=True, --resume, computes it)"
            )
        if failed:  # QA 2026-12-06: a run failed everywhere said nothing here
            inst, f = next(iter(failed.items()))
            with_bars = last_bar_days(self.store, instruments_of(self.record, known))
            every = set(failed) >= {
                i for i, d in with_bars.items() if day_to_iso(d) >= self.record.start
            }
            return (
                f"the strategy failed on {len(failed)} instrument(s)"
                + (", each of those with bars from its start" if every else "")
                + f" (first: {inst}: {f['error']}); such pairs hold no rows, and are "
                "retried when a day they read changes (the `failed` table lists them)"
                + ("" if every else "; the others are not computed yet: `incbt update`")
            )
        return self._no_bars_for(known)

    def _no_bars_for(self, known: list[str]) -> str | None:
        """Why its instruments give it nothing to compute: no bars, or none from its
        start (None: they do)."""
        last = last_bar_days(self.store, instruments_of(self.record, known))
        if not last:
            if self.record.universe == "all":
                return "the store holds no bars yet: ingest some, then `incbt update`"
            return (
                "its instruments have no bars in the store; check their names "
                '(`incbt query "SELECT DISTINCT instrument FROM bars"`)'
            )
        end = day_to_iso(max(last.values()))
        if self.record.start > end:
            return (
                f"it starts on {self.record.start}, after the last day with bars of its "
                f"instruments ({end}): `incbt update` computes it once their bars reach "
                "its start"
            )
        return None

    @property
    def daily(self) -> pa.Table:
        """One row per instrument and day: run_id, instrument, date, equity, pnl, pos,
        fees, fills, turnover (the ``daily`` table's rows of this run)."""
        return self._q("SELECT * FROM daily WHERE run_id = $r ORDER BY instrument, date")

    @property
    def fills(self) -> pa.Table:
        """One row per fill: run_id, instrument, ts, date, qty, price, fee (the ``fills``
        table's rows of this run)."""
        return self._q("SELECT * FROM fills WHERE run_id = $r ORDER BY instrument, ts")

    @property
    def equity(self) -> pa.Table:
        """The portfolio day by day (SEMANTICS.md), the curve a notebook plots: date,
        pnl (the instruments' pnl summed in name order), equity (the running sum of pnl,
        from 0), ret (pnl / capital: notional x instruments), drawdown (the running peak
        of equity, from 0, minus equity). Its pnl adds up to the metrics' total_pnl and
        its largest drawdown is their max_drawdown, bit for bit."""
        t = self._q(
            "SELECT instrument, CAST(date AS INT) AS day, pnl FROM daily WHERE run_id = $r "
            "ORDER BY instrument, date"
        )
        insts = t.column("instrument").to_numpy(zero_copy_only=False)
        days = t.column("day").to_numpy(zero_copy_only=False)
        pnl = t.column("pnl").to_numpy(zero_copy_only=False)
        cut = np.flatnonzero(insts[1:] != insts[:-1]) + 1 if len(insts) else np.empty(0, int)
        bounds = [0, *cut.tolist(), len(insts)] if len(insts) else []
        per = [(str(insts[a]), days[a:b], pnl[a:b]) for a, b in itertools.pairwise(bounds)]
        d, p = portfolio_pnl(per)
        known = self.store.instruments()
        capital = portfolio_capital(self.record, instruments_of(self.record, known))
        acc = fold_portfolio(p, capital)
        equity = acc[:, ACC_FIELDS.index("equity")]
        peak = acc[:, ACC_FIELDS.index("peak")]  # the fold's own: max_drawdown's bits
        return pa.table(
            {
                "date": pa.array(d.astype(np.int32), pa.int32()).cast(pa.date32()),
                "pnl": pa.array(p, pa.float64()),
                "equity": pa.array(equity, pa.float64()),
                "ret": pa.array(p / capital, pa.float64()),
                "drawdown": pa.array(peak - equity, pa.float64()),
            }
        )

    def stats(
        self, instrument: str | None = None, start: Any = None, end: Any = None
    ) -> dict[str, Any]:
        """The portfolio's statistics, as vectorbt's ``stats()``: the row of the built-in
        ``stats`` query (``incbt query stats -p run=ID``; README.md says each value) as
        a dict of Python dates, ints, floats and None ({} before the run has a day).
        The built-in query, not a store's own ``queries/stats.sql``: one meaning here.
        ``instrument``: that instrument's (its row of :meth:`instrument_stats`, as
        vectorbt's ``stats(column=...)``); one the run has no day of is refused, naming
        those it has and why (its strategy failed on it, with the error; not one of the
        run's instruments; no bars from its start yet).

        ``start``, ``end`` (dates, YYYY-MM-DD, inclusive; either may be left out): the
        statistics of the days in that window alone, as vectorbt's
        ``pf.loc[start:end].stats()``: its equity starts at 0 on its first day; a
        window of every day of the run is the run's own statistics, bit for bit ({}
        where the window holds no day of the run)."""
        window = stats_window(start, end)
        if instrument is None:
            t = self._builtin("stats", params=window)
            if not t.num_rows:
                return {}
            row = t.to_pylist()[0]
            del row["run_id"]  # the query's first column: its full id
            return row
        _name_given(instrument)
        t = self._builtin("instrument_stats", instrument, window)  # its row alone: ~10x faster
        # than all of them with 100 instruments (QA 2026-12-07: a loop over instruments)
        if not t.num_rows:
            names = self.instrument_stats().column("instrument").to_pylist()
            if instrument in names:  # days, none of them in the window: {} as stats()'s
                return {}
            raise NotFoundError(self._no_day_of(instrument, names))
        row = t.to_pylist()[0]
        del row["instrument"]
        return row

    def _no_day_of(self, instrument: str, names: list[str]) -> str:
        """Why the run has no row of ``instrument`` in instrument_stats, and the fix: its
        strategy failed on it, it is not one of the run's instruments, or it has no day
        from the run's start (QA 2026-12-07: a failed pair was said as "no day yet")."""
        some = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
        head = f"run {self.run_id} has no day of instrument {instrument!r}" + (
            f"; its instruments: {some}" if names else " (it has no day yet)"
        )
        with self.store.catalog.env.read() as txn:
            failed = rc.run_failures(self.store.catalog, txn, self.run_id)
        if instrument in failed:
            return (
                f"{head}; its strategy failed on {instrument!r}: {failed[instrument]['error']}; "
                "a failed pair holds no rows (the `failed` table lists them) and is computed "
                "again when a day it read changes, or by `incbt update --retry-failed` "
                "(store.update(retry_failed=True))"
            )
        if instrument not in instruments_of(self.record, self.store.instruments()):
            where = (
                f"the store holds no bars of {instrument!r}"
                if self.record.universe == "all"
                else f"{instrument!r} is not in the run's list of instruments"
            )
            return f"{head}; {where}"
        return f"{head}; {instrument!r} has no bars from the run's start ({self.record.start}) yet"

    def instrument_stats(self, start: Any = None, end: Any = None) -> pa.Table:
        """Each instrument's statistics, the values of :meth:`stats` over the instrument's
        own days with the run's notional as its capital: the built-in
        ``instrument_stats`` query's rows (``incbt query instrument_stats -p run=ID``), a
        row per instrument with days, best ``total_pnl`` first (``.to_pandas()`` for a
        DataFrame). ``start``, ``end``: over the days of that window alone, as
        :meth:`stats`'s."""
        return self._builtin("instrument_stats", params=stats_window(start, end))

    def trades(self, instrument: str | None = None) -> pa.Table:
        """The run's trades, as vectorbt's ``trades``: its fills paired into round trips,
        a row per position from the fill that opened it to the one that closed it
        (instrument, trade, direction, status, size, entry_ts, entry_price, entry_fee,
        exit_ts, exit_price, exit_fee, pnl, return, duration), by instrument and time.
        A reversal closes one trade and opens the next at the same fill, its fee split
        between them by units; a position still held is an ``open`` trade marked at the
        close of the instrument's last bar in the run, its PnL unrealized. Each
        instrument's trades' PnL adds up to its equity (README.md, Trades).
        ``instrument``: that instrument's alone."""
        from incbt.results.trades import trades_table

        sql = "SELECT instrument, ts, qty, price, fee FROM fills WHERE run_id = $r"
        params = {}
        if instrument is not None:
            _name_given(instrument)
            sql += " AND instrument = $i"
            params["i"] = instrument
        fills = self._q(sql + " ORDER BY instrument, ts", **params)
        if instrument is not None and not fills.num_rows:  # no fill of it: one of the run's?
            names = self._q("SELECT DISTINCT instrument FROM daily WHERE run_id = $r")
            if instrument not in names.column("instrument").to_pylist():
                raise NotFoundError(self._no_day_of(instrument, names.column(0).to_pylist()))
        return trades_table(fills, self._marks)

    def _marks(self, instruments: list[str]) -> dict[str, tuple[int, float]]:
        """Each instrument's last bar in the run, (ts in ns, close): what marks its open
        trade. The bars of its last day in ``daily``, as the store holds them now."""
        from incbt.results.trades import LAST_DAYS_SQL, marks_of

        days = self._q(LAST_DAYS_SQL.format(where="WHERE run_id = $r"))
        return marks_of(self.store, days, instruments)

    def trade_stats(self, instrument: str | None = None) -> dict[str, Any]:
        """vectorbt's trade statistics of :meth:`trades` (``instrument``: of that
        instrument's): trades, closed_trades, open_trades, win_rate_pct, best_trade_pct,
        worst_trade_pct, avg_winning_trade_pct, avg_losing_trade_pct,
        avg_winning_trade_duration, avg_losing_trade_duration, profit_factor and
        expectancy, over closed trades (README.md, Trades)."""
        from incbt.results.trades import trade_stats

        return trade_stats(self.trades(instrument))

    def _builtin(
        self, name: str, instrument: str | None = None, params: dict[str, Any] | None = None
    ) -> pa.Table:
        """The built-in named query ``name`` of this run (not a store's own file of that
        name: one meaning here), its other parameters ``params`` or their defaults;
        ``instrument``: its rows of that instrument alone (the filter reaches the scan
        of ``daily``)."""
        from incbt.queries import BUILTIN, _read, param_defaults
        from incbt.query import run_sql_fresh

        self._reading()
        sql = _read(BUILTIN / f"{name}.sql")
        params = {**param_defaults(sql), **(params or {}), "run": self.run_id}
        if instrument is not None:
            sql = f"SELECT * FROM ({sql.rstrip().rstrip(';')}) q WHERE q.instrument = $instrument"
            params["instrument"] = instrument
        return run_sql_fresh(
            lambda: self.store._session(None, sql, [self.run_id]),
            sql,
            params,
            name=name,
        )

    def __reduce__(self) -> tuple[Any, tuple[Any, str]]:
        """Pickled as its store and id, found again where it is unpickled."""
        return (_run_again, (self.store, self.run_id))

    def __repr__(self) -> str:
        cat = self.store.catalog
        try:
            cat.env.still_here()
        except StoreError:  # said, not raised (a notebook shows it)
            return f"<Run {self.run_id}: its store {self.store.path}: {cat.env.unreadable()}>"
        with cat.env.read() as txn:
            stored = rc.get_run(cat, txn, self.run_id)
            failed = rc.run_failures(cat, txn, self.run_id)
        rec = stored or self.record
        params = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.params.items()
        )
        setup = [_from(rec.start)]
        ex = rec.exec_params
        if ex.get("notional", 100000.0) != 100000.0:
            setup.append(f"notional {ex['notional']:,g}")
        costs = [
            f"{unit} {ex.get(k, 0.0):g} bps"
            for k, unit in (("fee_bps", "fee"), ("slippage_bps", "slippage"))
            if ex.get(k, 0.0) or rec.fork  # a fork's, zero or not: its base's before D
        ]
        if not rec.fork:
            setup += costs
        u = rec.universe
        setup.append(
            "every instrument"
            if u == "all"
            else f"{len(u)} instrument(s)"
            if len(u) > 3
            else ", ".join(u)
        )
        if rec.fork:  # QA 2026-12-06: "slippage 3 bps" hid the base's fee, paid before D
            setup.append(
                f"fork of {rec.fork['base']} from {rec.fork['effective']} ({', '.join(costs)} "
                "from then; the base's before)"
            )
        if stored is None:  # a dry run's (QA 2026-12-05: it read "no results yet")
            body = "not registered (a dry run: nothing was computed or written)"
        elif rec.superseded_by:
            body = f"superseded by {rec.superseded_by} (its strategy's code changed)"
        elif rec.dropped_seq is not None:
            body = f"dropped (event {rec.dropped_seq})"
        else:
            p = self.portfolio
            if p:
                body = ", ".join(f"{k}={v:.6g}" for k, v in p.items())
            elif failed:  # not "yet": an update does not fill it in (QA 2026-12-06)
                body = "no results"
            else:
                body = "no results yet"
            if failed:
                body += (
                    f"; the strategy failed on {len(failed)} instrument(s), which hold no "
                    f"rows ({'' if p else '.why_empty(), '}the `failed` table)"
                )
            body += _stale_note(self.stale)
        return f"<Run {self.run_id} {rec.strategy}({params}) {'; '.join(setup)}: {body}>"
