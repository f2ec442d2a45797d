"""Shared fixtures. Tests never read the user's own store or settings."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile

import pytest

# Isolate from the user's environment before incbt is imported anywhere.
for _k in [k for k in os.environ if k.startswith("INCBT_")]:
    del os.environ[_k]
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "incbt-test-numba"))
os.environ["INCBT_LOCK_TIMEOUT"] = "5"

# Commands the tests start get Ctrl-C as a terminal gives it: a suite started in the
# background of a shell without job control inherits SIGINT ignored, and the commands
# it starts would ignore the SIGINT the signal tests send them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import incbt  # noqa: E402
import incbt.runs  # noqa: E402
from incbt.bars.generate import generate  # noqa: E402

# A new run sums its instruments into its portfolio as they arrive, every FOLD_EVERY of
# them (32: more instruments than most test stores hold). Every 2 here, so that every
# in-process test of a run over 3 or more instruments takes that path, and verify() and
# the comparisons with fresh stores check its bits.
incbt.runs.FOLD_EVERY = 2


@pytest.fixture
def store(tmp_path):
    """A fresh, empty store."""
    return incbt.init(str(tmp_path / "store"))


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """3 instruments x 5 days of generated CSV, one file per day."""
    out = tmp_path_factory.mktemp("data")
    files = generate(str(out), instruments=3, days=5, start="2024-01-29", seed=7)
    return out, files


def ingested(tmp_path, instruments: int = 2, days: int = 3, seed: int = 2) -> incbt.Store:
    """A store under ``tmp_path`` holding generated bars (from 2024-03-04)."""
    generate(str(tmp_path / "d"), instruments=instruments, days=days, start="2024-03-04",
             seed=seed)
    s = incbt.init(str(tmp_path / "s"))
    s.ingest(str(tmp_path / "d"))
    return s


def tree_state(path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (the LMDB lock file excluded)."""
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            if f in ("lock.mdb", "write.lock"):
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, path)] = fh.read()
    return out


@contextlib.contextmanager
def reading_csv_with(name: str):
    """CSV files read by one reader: "fast" (loaded here if need be) or Arrow's."""
    from incbt.bars import fastcsv

    if name == "fast":
        fastcsv.prepare().join()
        assert fastcsv._kernel is not None, fastcsv.load_error
        yield
    else:
        with fastcsv.disabled():
            yield


@pytest.fixture(params=["arrow", "fast"])
def csv_reader(request):
    """Each CSV reader in turn: Arrow's, and the fast one."""
    with reading_csv_with(request.param):
        yield request.param


def bits(t):
    """A table with its float64 columns as the int64 of their bits: ``bits(a).equals(
    bits(b))`` is bit for bit (Arrow's ``equals`` compares floats by value, so 0.0
    equals -0.0 and NaN never equals NaN)."""
    import pyarrow as pa

    cols = []
    for c in t.columns:
        if pa.types.is_float64(c.type):
            c = pa.chunked_array([x.view(pa.int64()) for x in c.chunks], pa.int64())
        cols.append(c)
    return pa.Table.from_arrays(cols, names=t.column_names)


def assert_files_are_the_catalogs(store) -> None:
    """Every result file on disk is a committed batch's, or one the last compaction
    merged away (its trash, deleted by the next one); none is missing; nothing is left
    in the store's ``tmp/``."""
    from incbt.catalog import runs as rc

    with store.catalog.env.read() as txn:
        recs = dict(rc.batches(store.catalog, txn))
        trash = {p for _, paths in store.catalog.meta(txn).get("trash", []) for p in paths}
    listed = {rec[k] for rec in recs.values() for k in ("daily", "fills")}
    on_disk = {
        os.path.relpath(os.path.join(d, f), store.path)
        for d, _, fs in os.walk(os.path.join(store.path, "results"))
        for f in fs
    }
    assert listed <= on_disk <= listed | trash, (on_disk - listed - trash, listed - on_disk)
    assert not os.path.exists(os.path.join(store.path, "tmp"))


FAILS = (
    "import incbt\n\n"
    "@incbt.strategy(params={'n': incbt.Param(int, default=5, min=1), "
    "'give_up': incbt.Param(int, default=0, min=0, max=1)}, state=('k',))\n"
    "def fails(p, s, o, h, l, c, v, i):\n"
    "    s[0] += 1\n"
    "    if p[1] == 1 and s[0] > 3:\n"
    "        raise ValueError('gave up')\n"
    "    return 1 if int(s[0]) % int(p[0]) == 0 else -1\n"
)


# ``mom``: long when the close is above the close n bars back, else {SHORT} (-1: short;
# a test edits it to 0 to change the strategy's code)
MOM = '''import incbt

@incbt.strategy(params={"n": incbt.Param(int, default=10, min=2)}, state=(),
                warmup=lambda p: p["n"])
def mom(p, s, o, h, l, c, v, i):
    n = int(p[0])
    if i < n:
        return 0
    return 1 if c[i] > c[i - n] else {SHORT}
'''


def fails_strategy(folder) -> str:
    """A strategies file whose ``fails`` raises on every instrument where give_up=1
    (its other runs are fine): the file's path."""
    f = folder / "fails.py"
    f.write_text(FAILS)
    return str(f)
