"""Named SQL queries: ``.sql`` files found by name.

Search order: ``$INCBT_QUERIES`` (a folder), ``<store>/queries/``, then the
built-in ``queries/`` folder shipped beside the package. Each file starts with
``--`` comment lines: the first says what it answers; ``-- param: NAME ...``
lines document its ``$NAME`` parameters, a line ending ``(default: VALUE)`` giving
the value used when ``-p NAME=...`` is left out. Values are always bound (``$NAME``);
a query may also take column names in ``{{NAME}}`` slots, accepted only as
plain identifiers (``fill_identifiers``), e.g. the axes of a pivot.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from incbt.errors import BadInputError, NotFoundError, UsageError

BUILTIN = Path(__file__).resolve().parent.parent / "queries"


def query_dirs(store_path: str | None) -> list[Path]:
    dirs = []
    given = os.environ.get("INCBT_QUERIES")
    if given:
        d = Path(os.path.expanduser(given))
        if not d.is_dir():  # a typo was left out without a word (QA 2026-12-07)
            what = "a file, not a folder" if d.exists() else "no such folder"
            raise NotFoundError(
                f"INCBT_QUERIES={given}: {what} (it names the folder of your own named "
                "queries). Fix: give the folder of your .sql files, or unset INCBT_QUERIES"
            )
        dirs.append(d)
    if store_path:
        dirs.append(Path(store_path) / "queries")
    dirs.append(BUILTIN)
    return [d for d in dirs if d.is_dir()]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SLOT = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def identifier_slots(sql: str) -> set[str]:
    """The ``{{NAME}}`` slots of a named query (column names, never values)."""
    return set(_SLOT.findall(sql))


def fill_identifiers(sql: str, params: dict[str, object], name: str, how: str = "-p {}") -> str:
    """Put identifier parameters into their ``{{NAME}}`` slots, and take them out of
    ``params``. Only plain identifiers are accepted, so nothing but a column name
    can be spliced into the SQL; values are always bound as ``$NAME``. Slots that name
    a column of the result (``AS {{NAME}}``) must be given different names: the same
    one twice failed in DataFusion's planner, not as bad usage (QA 2026-12-05)."""
    given: dict[str, str] = {}
    for slot in sorted(identifier_slots(sql)):
        if slot not in params:
            raise UsageError(f"query {name} needs {how.format(slot)}=NAME (a column name)")
        value = str(params.pop(slot))
        if not _IDENT.fullmatch(value):
            raise UsageError(
                f"query {name}: {how.format(slot)}={value!r} must be a plain name (letters, digits "
                "and _, not starting with a digit)"
            )
        # Unquoted names are one name whatever their case, so they are compared lowercased.
        if re.search(r"\bAS\s+\{\{\s*" + slot + r"\s*\}\}", sql, re.IGNORECASE):
            same = [k for k, v in given.items() if v.lower() == value.lower()]
            if same:
                raise UsageError(
                    f"query {name}: -p {same[0]}={given[same[0]]!r} and -p {slot}={value!r} "
                    "must be two different names (each names a column of the result)"
                )
            given[slot] = value
        sql = re.sub(r"\{\{\s*" + slot + r"\s*\}\}", value, sql)
    return sql


_VALUE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*|[0-9]+)")  # $NAME, or $1 (positional)
_NOT_CODE = re.compile(r"--[^\n]*|'(?:[^']|'')*'")  # comments and string literals


def param_docs(sql: str) -> list[str]:
    """The query's ``-- param: NAME what it is`` lines, each as "NAME what it is"."""
    return [ln.split(":", 1)[1].strip() for ln in sql.splitlines() if ln.startswith("-- param:")]


_DEFAULT = re.compile(r"\(default:\s*([^)]*?)\s*\)\s*$")


def param_defaults(sql: str) -> dict[str, object]:
    """The defaults of the query's parameters: a ``-- param: NAME ... (default: VALUE)``
    line's VALUE, an int or float where it reads as one (as ``-p`` values are)."""
    out: dict[str, object] = {}
    for doc in param_docs(sql):
        m = _DEFAULT.search(doc)
        if m and doc.split():
            out[doc.split()[0]] = coerce(m.group(1))
    return out


def coerce(v: str) -> object:
    """A ``-p`` value as given on the command line: int, float, else the text (``20_0``
    is text: Python's int() reads it as 200, which no one typing it meant: QA)."""
    if "_" in v:
        return v
    for t in (int, float):
        try:
            return t(v)
        except ValueError:
            pass
    return v


def value_params(sql: str) -> set[str]:
    """The ``$NAME`` parameters a query binds (outside its comments and strings)."""
    return set(value_params_in_order(sql))


def value_params_in_order(sql: str) -> list[str]:
    """The ``$NAME`` parameters a query binds, each once, in the order they first appear."""
    return list(dict.fromkeys(_VALUE.findall(_NOT_CODE.sub(" ", sql))))


def check_bound(sql: str, params: dict[str, object], option: str) -> None:
    """Every value given binds a ``$NAME`` of the SQL, or a UsageError names the first
    that does not; ``option`` spells how it was given, ``{}`` its name (``"-p {}"``)."""
    unused = sorted(set(params) - value_params(sql))
    if unused:
        raise UsageError(
            f"{option.format(unused[0])}: the SQL has no ${unused[0]} to bind it to "
            "(write $NAME where the value goes)"
        )


def check_params(sql: str, params: dict[str, object], name: str, how: str = "-p {}") -> None:
    """A named query gets exactly the ``$NAME`` values it binds (after its ``{{NAME}}``
    slots took theirs): a missing one takes its default if it has one (added to
    ``params``); one missing without a default, or an unknown ``-p``, is a usage error
    that names them."""
    want = value_params(sql)
    docs = param_docs(sql)
    for k, v in param_defaults(sql).items():
        if k in want:
            params.setdefault(k, v)
    about = f" (its parameters: {'; '.join(docs)})" if docs else ""
    missing = sorted(want - set(params))
    if missing:
        raise UsageError(
            f"query {name} needs " + " ".join(f"{how.format(m)}=VALUE" for m in missing) + about
        )
    unknown = sorted(set(params) - want)
    if unknown:
        # the parameters once, with their docs where it has them (QA 2026-12-06: "its
        # parameters are day (its parameters: day ...)")
        documented = {d.split()[0] for d in docs if d.split()}
        rest = [n for n in sorted(want | identifier_slots(sql)) if n not in documented]
        listed = "; ".join([*docs, *rest]) or "none"
        raise UsageError(
            f"query {name} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters: {listed}"
        )


def is_query_name(text: str) -> bool:
    """Whether ``text`` has a query name's form (letters, digits, ``_`` and ``-``)."""
    return text.replace("_", "").replace("-", "").isalnum()


def _window_in_order(params: dict[str, Any], how: str, name: str = "stats") -> None:
    """The stats query's window ending before it starts is refused, as ``run.stats()``
    refuses it (QA 2026-12-07: ``-p start=2024-02-01 -p end=2024-01-01`` printed no
    row, exit 0, read as a run with no day in the window). Values that are not dates
    are left to the query's own error, which names the type it wants."""
    from incbt.errors import IncbtError
    from incbt.runs import stats_window

    try:
        stats_window(params.get("start"), params.get("end"))
    except IncbtError as exc:
        if "before it starts" not in str(exc):
            return
        raise UsageError(
            f"query {name}: the window ends ({how.format('end')}={params['end']}) before it "
            f"starts ({how.format('start')}={params['start']}): give start on or before end"
        ) from None


# incbt's queries that read the daily and fills rows of their run ($run) alone: a session
# for one of them reads that run's results files, not the store's every one (QA
# 2026-12-07: the CLI's stats of one run read 300 files, 3.1 s, where run.stats() read
# its own)
ONE_RUN = frozenset({"stats", "instrument_stats", "pnl_by_month", "pnl_by_year", "worst_drawdowns"})


def run_read(name: str | None, sql: str, params: dict[str, Any]) -> list[str] | None:
    """The runs whose results a named query reads, where it is one of incbt's that
    read one run's (``ONE_RUN``, as incbt wrote it, its ``run`` resolved to a whole
    id); None: it may read any."""
    rid = params.get("run")
    if name not in ONE_RUN or not isinstance(rid, str) or len(rid) != 16:
        return None
    if sql != fill_identifiers(_read(BUILTIN / f"{name}.sql"), params, name, "-p {}"):
        return None  # a store's own query of that name
    return [rid]


def find_query(name: str, store_path: str | None) -> str | None:
    """The SQL of the named query, or None when ``name`` is not a query name."""
    if not is_query_name(name):
        return None
    for d in query_dirs(store_path):
        p = d / f"{name}.sql"
        if p.is_file():
            return _read(p)
    return None


def _read(p: Path) -> str:
    """A query file's text (UTF-8; QA 2026-12-06: another encoding exited 3, "a bug")."""
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(
            f"the query file is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})",
            file=str(p),
            fix="save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or remove it",
        ) from None


def list_queries(store_path: str | None) -> list[dict[str, str]]:
    seen: dict[str, dict[str, str]] = {}
    for d in query_dirs(store_path):
        for p in sorted(d.glob("*.sql")):
            if p.stem in seen or not p.is_file():  # a folder named x.sql is no query
                continue
            try:
                text = _read(p)
            except BadInputError as e:  # listed, with what is wrong: the others still are
                seen[p.stem] = {"name": p.stem, "description": f"cannot be read: {e.problem}; "
                                f"{e.fix}", "params": "", "path": str(p)}  # fmt: skip
                continue
            desc = next(
                (ln.lstrip("- ").strip() for ln in text.splitlines() if ln.startswith("--")), ""
            )
            params = param_docs(text)
            seen[p.stem] = {
                "name": p.stem,
                "description": desc,
                "params": "; ".join(params),
                "path": str(p),
            }
    return list(seen.values())


def prepare_named(
    store: Any, name: str, params: dict[str, Any], how: str = "-p {}"
) -> tuple[str, dict[str, str]]:
    """A named query's SQL with its column-name slots filled, ``params`` completed (its
    defaults) and checked; a run id prefix given as ``run`` resolved, a ``sweep`` that
    is not there said: what ``incbt query NAME -p ...`` and ``Store.query`` run. Returns
    the SQL and the identifier values given (column names: a query naming one the
    tables do not have is said by the caller). NotFoundError for a name no query has.
    ``how`` spells how a parameter is given (``{}``: its name), as the caller takes it."""
    sql = find_query(name, store.path)
    if sql is None:
        known = ", ".join(q["name"] for q in list_queries(store.path))
        raise NotFoundError(
            f"no query named {name!r}; the named queries: {known} "
            "(`incbt query --list` describes them)"
        )
    names_given = {k: str(params[k]) for k in identifier_slots(sql) if k in params}
    builtin_stats = name in ("stats", "instrument_stats") and sql == _read(BUILTIN / f"{name}.sql")
    sql = fill_identifiers(sql, params, name, how)
    check_params(sql, params, name, how)
    if builtin_stats:
        _window_in_order(params, how, name)
    if "run" in params:  # a run id: a unique prefix is enough, as everywhere else
        rid = params["run"]  # (the CLI's -p are text; Python's 3 or None was "run '3'",
        # QA 2026-12-07)
        if not isinstance(rid, str):
            raise UsageError(
                f"{how.format('run')}: give a run id (or a unique prefix of one), a "
                f"string, not {rid!r}"
            )
        params["run"] = store.run(rid).run_id
    if "sweep" in params:  # a sweep that is not there: said, not an empty table
        from incbt.sweep import get_sweep, no_such_sweep

        if get_sweep(store, str(params["sweep"])) is None:
            raise no_such_sweep(str(params["sweep"]), store.catalog)
    return sql, names_given
