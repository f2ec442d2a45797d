"""Store benchmarks (issue: the store): ingest speed and memory, range reads.

    .venv/bin/python benchmarks/bench_store.py                 # small default, ~1 min
    .venv/bin/python benchmarks/bench_store.py --seed-scale    # 500 instruments x 5 years

Side by side in one run, on the same generated CSV files:
- ingest rows/s: ``incbt`` (validate, hash, write buckets, commit) vs
  ``pandas.read_csv`` + ``DataFrame.to_parquet`` of the same files;
- peak RSS of ``incbt ingest`` (a fresh process) as a multiple of the raw bytes;
- one instrument's one-year range: ``Store.bars`` and SQL vs a full-scan filter
  (read every bars file, then filter).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import statistics
import sys
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

sys.path.insert(0, os.path.dirname(__file__))
from common import (  # noqa: E402
    OUT,
    best_of,
    dataset,
    dir_bytes,
    machine,
    peak_rss,
    table,
    update_readme,
)

import incbt  # noqa: E402


def bench_ingest(data, repeats: int, verbose: bool = False) -> dict[str, float]:
    """Best of ``repeats`` rounds, each: incbt, incbt with Arrow's CSV reader, pandas."""
    from incbt.bars import fastcsv

    files = sorted(glob.glob(str(data / "*.csv")))
    raw = sum(os.path.getsize(f) for f in files)
    store_dir = OUT / "store-ingest"
    rows = {}

    def fresh() -> None:
        shutil.rmtree(store_dir, ignore_errors=True)
        incbt.init(str(store_dir))

    def ours() -> None:
        rows["n"] = incbt.open(str(store_dir)).ingest(str(data)).rows_read

    def ours_arrow() -> None:
        with fastcsv.disabled():
            ours()

    import pandas as pd

    pdir = OUT / "pandas-out"

    def pandas_way() -> None:
        shutil.rmtree(pdir, ignore_errors=True)
        pdir.mkdir(parents=True)
        for f in files:
            df = pd.read_csv(f, parse_dates=["ts"])
            df.to_parquet(pdir / (os.path.basename(f) + ".parquet"))

    def warm() -> None:
        """Read every input once, untimed, just before each contender: all three start
        with the page cache holding as much of the inputs as it can (at the seed's scale,
        18 GiB of CSV on a 24 GiB machine, the first of a round otherwise read them cold:
        88 s against 61 s warm)."""
        for f in files:
            with open(f, "rb") as fh:
                while fh.read(16 << 20):
                    pass

    def fresh_warm() -> None:
        fresh()
        warm()

    t_ours, t_arrow, t_pd = [], [], []
    for k in range(repeats):  # interleaved: the same load for all three
        t_ours.append(best_of(1, ours, fresh_warm))
        t_arrow.append(best_of(1, ours_arrow, fresh_warm))
        t_pd.append(best_of(1, pandas_way, warm))
        if verbose:
            print(f"round {k + 1}: incbt {t_ours[-1]:.2f} s, with Arrow's reader "
                  f"{t_arrow[-1]:.2f} s, pandas {t_pd[-1]:.2f} s", flush=True)
    n = rows["n"]
    t, ta, tp = min(t_ours), min(t_arrow), min(t_pd)
    return {"rows": n, "raw": raw, "ours_s": t, "arrow_s": ta, "pandas_s": tp,
            "ours_rps": n / t, "arrow_rps": n / ta, "pandas_rps": n / tp}


def one_file(data) -> str:
    """The same bars as one CSV file (the daily files one after another, one header)."""
    files = sorted(glob.glob(str(data / "*.csv")))
    out = OUT / f"{data.name}-one.csv"
    if not out.exists() or out.stat().st_size < sum(os.path.getsize(f) for f in files) * 0.9:
        tmp = str(out) + ".tmp"
        with open(tmp, "wb") as w:
            for k, f in enumerate(files):
                with open(f, "rb") as r:
                    head = r.readline()
                    if k == 0:
                        w.write(head)
                    shutil.copyfileobj(r, w, 1 << 24)
        os.replace(tmp, out)
    return str(out)


def one_gz(data) -> str:
    """That one file, gzip-compressed (level 1: quick to build)."""
    import gzip

    src = one_file(data)
    out = OUT / f"{data.name}-one.csv.gz"
    if not out.exists() or out.stat().st_mtime < os.path.getmtime(src):
        tmp = str(out) + ".tmp"
        with open(src, "rb") as r, gzip.open(tmp, "wb", compresslevel=1) as w:
            shutil.copyfileobj(r, w, 1 << 24)
        os.replace(tmp, out)
    return str(out)


class TmpDisk:
    """The most bytes a folder held while the block ran (sampled every 10 ms)."""

    def __init__(self, folder) -> None:
        self.folder, self.peak = str(folder), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _size(self) -> int:
        total = 0
        for root, _, names in os.walk(self.folder):
            for n in names:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    total += os.path.getsize(os.path.join(root, n))
        return total

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._size())

    def __enter__(self) -> TmpDisk:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def one_group(data) -> str:
    """That one file as Parquet written as a single row group (what older pandas and
    pyarrow defaults wrote for a few million rows: 64 Mi rows a group)."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    src = one_file(data)
    out = OUT / f"{data.name}-one-group.parquet"
    if not out.exists() or out.stat().st_mtime < os.path.getmtime(src):
        t = pcsv.read_csv(src, convert_options=pcsv.ConvertOptions(
            column_types={"ts": pa.timestamp("ns", tz="UTC")}))
        tmp = str(out) + ".tmp"
        pq.write_table(t, tmp, row_group_size=t.num_rows)
        os.replace(tmp, out)
    return str(out)


def bench_rss(data, whole: bool = True) -> dict[str, float]:
    """Peak RSS of `incbt ingest` of the daily files; of the same bars as one file, read
    in parts (the default) and, with ``whole``, read whole (``ingest_chunk_mb`` above its
    size), gzip-compressed and as Parquet of one row group. Without ``whole`` (the seed's
    scale: an 18 GiB file read whole needs ~3.4x that in memory, more than this machine
    has; so does building its one-group Parquet copy) only the parts of the plain file."""
    files = sorted(glob.glob(str(data / "*.csv")))
    raw = sum(os.path.getsize(f) for f in files)
    big = one_file(data)
    env = dict(os.environ)
    out: dict[str, float] = {"raw": raw, "big_raw": os.path.getsize(big)}
    runs = {"": (str(data), env), "base": (files[0], env), "big": (big, env)}
    if whole:
        gz, group = one_gz(data), one_group(data)
        out |= {"gz_raw": os.path.getsize(gz), "pq_raw": os.path.getsize(group)}
        read_whole = env | {"INCBT_INGEST_CHUNK_MB": str(2 * out["big_raw"] / (1 << 20))}
        runs |= {
            "big_whole": (big, read_whole),
            "gz": (gz, env),
            "gz_whole": (gz, read_whole),
            "pq": (group, env),
            "pq_whole": (group, read_whole),
        }
    for key, (what, e) in runs.items():
        s = OUT / f"store-rss{'-' + key if key else ''}"
        shutil.rmtree(s, ignore_errors=True)
        incbt.init(str(s))
        with TmpDisk(s / "tmp") as disk:
            peak, wall = peak_rss(["--store", str(s), "ingest", what], e)
        out[f"{key}_peak" if key else "peak"] = peak
        out[f"{key}_wall" if key else "wall"] = wall
        out[f"{key}_tmp" if key else "tmp"] = disk.peak
        shutil.rmtree(s, ignore_errors=True)
    out["base"] = out.pop("base_peak")
    out["ratio"] = out["peak"] / raw
    out["net_ratio"] = (out["peak"] - out["base"]) / raw
    return out


def bench_range(store_dir, year_days: tuple[str, str], repeats: int) -> dict[str, float]:
    st = incbt.open(str(store_dir))
    inst = st.instruments()[len(st.instruments()) // 2]
    first, last = year_days
    n_rows = len(st.bars(inst, first, last))

    def via_bars() -> None:
        b = st.bars(inst, first, last)
        assert len(b) == n_rows

    q = ("SELECT ts, open, high, low, close, volume FROM bars WHERE instrument = $i "
         "AND date BETWEEN CAST($a AS DATE) AND CAST($b AS DATE)")

    def via_sql() -> None:
        t = st.sql(q, params={"i": inst, "a": first, "b": last})
        assert t.num_rows == n_rows

    paths = [os.path.join(st.path, p) for p in st.sql("SELECT path FROM files")["path"]
             .to_pylist()]

    def full_scan() -> None:
        t = ds.dataset(paths, format="parquet").to_table(
            columns=["instrument", "ts", "date", "open", "high", "low", "close", "volume"])
        lo = pa.scalar(np.datetime64(first, "D").astype(object), pa.date32())
        hi = pa.scalar(np.datetime64(last, "D").astype(object), pa.date32())
        mask = pc.and_(pc.equal(t["instrument"], inst), pc.and_(
            pc.greater_equal(t["date"], lo), pc.less_equal(t["date"], hi)))
        assert t.filter(mask).num_rows == n_rows

    full_scan()  # warm the page cache for everyone alike
    tb = statistics.median([best_of(1, via_bars) for _ in range(repeats)])
    tq = statistics.median([best_of(1, via_sql) for _ in range(repeats)])
    tf = best_of(max(1, repeats // 3), full_scan)
    return {"rows": n_rows, "bars_s": tb, "sql_s": tq, "scan_s": tf,
            "files": len(paths), "bytes": dir_bytes(store_dir / "bars")}


def whole_rows(rss: dict[str, float], mb: int) -> list[tuple[str, ...]]:
    """The rows of one big file read in parts against read whole (plain, gzip, Parquet)."""
    return [
        (f"the same bars as one CSV file ({rss['big_raw'] / mb:,.0f} MiB), read in parts "
         f"of `ingest_chunk_mb` (64 MiB): peak RSS / raw bytes, wall time",
         f"{rss['big_peak'] / rss['big_raw']:.2f} ({rss['big_peak'] / mb:,.0f} MiB), "
         f"{rss['big_wall']:.2f} s",
         f"read whole (as before 2026-12-03): {rss['big_whole_peak'] / rss['big_raw']:.2f} "
         f"({rss['big_whole_peak'] / mb:,.0f} MiB), {rss['big_whole_wall']:.2f} s",
         f"{rss['big_whole_peak'] / rss['big_peak']:.1f}x less memory", ""),
        (f"the same file gzip-compressed ({rss['gz_raw'] / mb:,.0f} MiB), cut in parts as "
         "it is decompressed: peak RSS / its plain bytes, wall time; most disk its parts took "
         "under the store's `tmp/`",
         f"{rss['gz_peak'] / rss['big_raw']:.2f} ({rss['gz_peak'] / mb:,.0f} MiB), "
         f"{rss['gz_wall']:.2f} s; {rss['gz_tmp'] / mb:,.0f} MiB",
         f"read whole: {rss['gz_whole_peak'] / rss['big_raw']:.2f} "
         f"({rss['gz_whole_peak'] / mb:,.0f} MiB), {rss['gz_whole_wall']:.2f} s",
         f"{rss['gz_whole_peak'] / rss['gz_peak']:.1f}x less memory; disk "
         f"{rss['gz_tmp'] / rss['big_raw']:.2f}x the plain file (a whole plain copy before "
         "2026-12-04)", ""),
        (f"the same bars as one Parquet file of one row group ({rss['pq_raw'] / mb:,.0f} MiB), "
         "read as a stream of parts: peak RSS / the CSV file's bytes, wall time",
         f"{rss['pq_peak'] / rss['big_raw']:.2f} ({rss['pq_peak'] / mb:,.0f} MiB), "
         f"{rss['pq_wall']:.2f} s",
         f"read whole (as before 2026-12-04): {rss['pq_whole_peak'] / rss['big_raw']:.2f} "
         f"({rss['pq_whole_peak'] / mb:,.0f} MiB), {rss['pq_whole_wall']:.2f} s",
         f"{rss['pq_whole_peak'] / rss['pq_peak']:.1f}x less memory", ""),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instruments", type=int, default=40)
    ap.add_argument("--days", type=int, default=260)
    ap.add_argument("--repeats", type=int, default=None,
                    help="interleaved ingest rounds, best of (default 3; 1 at the seed's scale)")
    ap.add_argument("--seed-scale", action="store_true",
                    help="the seed workload: 500 instruments x 5 years (1260 days)")
    ap.add_argument("--ingest-only", action="store_true",
                    help="only the ingest rounds, printed (not in the README)")
    ap.add_argument("--no-readme", action="store_true", help="print only")
    a = ap.parse_args()
    if a.seed_scale:
        a.instruments, a.days = 500, 1260
    if a.repeats is None:
        a.repeats = 1 if a.seed_scale else 3
    data = dataset(a.instruments, a.days)
    print(f"data: {a.instruments} instruments x {a.days} days in {data}", flush=True)
    ing = bench_ingest(data, a.repeats, verbose=a.ingest_only)
    print(ing, flush=True)
    if a.ingest_only:
        print(f"ingest, best of {a.repeats}: incbt {ing['ours_rps']:,.0f} rows/s, pandas "
              f"{ing['pandas_rps']:,.0f} rows/s: {ing['ours_rps'] / ing['pandas_rps']:.2f}x "
              f"(Arrow's CSV reader: {ing['arrow_rps'] / ing['pandas_rps']:.2f}x)")
        return
    rss = bench_rss(data, whole=not a.seed_scale)
    print(rss, flush=True)
    rng = bench_range(OUT / "store-ingest", ("2020-01-01", "2020-12-31"), 7)
    print(rng, flush=True)
    mb = 1024 * 1024
    speedup = ing["ours_rps"] / ing["pandas_rps"]
    rows = [
        ("CSV ingest, rows/s", f"{ing['ours_rps']:,.0f}", f"{ing['pandas_rps']:,.0f} "
         "(pandas read_csv + to_parquet)", f"**{speedup:.2f}x**",
         f">= 3x: {'met' if speedup >= 3 else '**missed**'}"),
        ("for reference: CSV ingest with Arrow's CSV reader only, rows/s",
         f"{ing['arrow_rps']:,.0f}", f"{ing['pandas_rps']:,.0f}",
         f"{ing['arrow_rps'] / ing['pandas_rps']:.1f}x", ""),
        ("for reference: `incbt ingest` CLI, fresh process (start-up, imports and the "
         "CSV kernel's load included), wall time", f"{rss['wall']:.2f} s",
         f"{ing['pandas_s']:.2f} s (pandas, in-process)",
         f"{ing['pandas_s'] / rss['wall']:.1f}x", ""),
        ("ingest peak RSS / raw CSV bytes", f"{rss['ratio']:.2f} ({rss['peak'] / mb:,.0f} MiB"
         f" / {rss['raw'] / mb:,.0f} MiB)", f"{rss['net_ratio']:.2f} net of the "
         f"{rss['base'] / mb:,.0f} MiB process baseline", "",
         f"<= 1.5x: {'met' if rss['ratio'] <= 1.5 else '**missed**'}"),
        *(whole_rows(rss, mb) if "big_whole_peak" in rss else [
            (f"the same bars as one CSV file ({rss['big_raw'] / mb:,.0f} MiB), read in parts "
             f"of `ingest_chunk_mb` (64 MiB): peak RSS / raw bytes, wall time",
             f"{rss['big_peak'] / rss['big_raw']:.2f} ({rss['big_peak'] / mb:,.0f} MiB), "
             f"{rss['big_wall']:.2f} s",
             "read whole: not measured at this scale (~3.4x the file in memory)", "", ""),
        ]),
        ("1 instrument x 1 year via `Store.bars`", f"{rng['bars_s'] * 1e3:.1f} ms",
         f"{rng['scan_s'] * 1e3:.0f} ms (full-scan filter)",
         f"**{rng['scan_s'] / rng['bars_s']:.0f}x**",
         f">= 10x: {'met' if rng['scan_s'] >= 10 * rng['bars_s'] else '**missed**'}"),
        ("1 instrument x 1 year via SQL", f"{rng['sql_s'] * 1e3:.1f} ms",
         f"{rng['scan_s'] * 1e3:.0f} ms (full-scan filter)",
         f"**{rng['scan_s'] / rng['sql_s']:.0f}x**",
         f">= 10x: {'met' if rng['scan_s'] >= 10 * rng['sql_s'] else '**missed**'}"),
    ]
    text = (
        f"Data: {a.instruments} instruments x {a.days} days = {ing['rows']:,} bars, "
        f"{ing['raw'] / mb:,.0f} MiB of CSV in {a.days} daily files; the store holds "
        f"{rng['files']} bucket files ({rng['bytes'] / mb:,.0f} MiB). Ingest: best of "
        f"{a.repeats} interleaved rounds (incbt, incbt with Arrow's CSV reader, pandas), "
        "in-process, each after an untimed read of every input file; incbt's fast CSV "
        "reader (`incbt/bars/fastcsv.py`) loads its kernel "
        f"during the first round. Machine: {machine()}. "
        f"Run {time.strftime('%Y-%m-%d')}.\n\n"
        + table(rows, ("measure", "incbt", "peer", "ratio", "goal"))
        + "\n\nCommand: `.venv/bin/python benchmarks/bench_store.py"
        + (" --seed-scale" if a.seed_scale else "")
        + (f" --repeats {a.repeats}" if a.repeats != (1 if a.seed_scale else 3) else "") + "`"
    )
    print(text)
    if not a.no_readme:
        update_readme("store-seed" if a.seed_scale else "store", text)


if __name__ == "__main__":
    main()
