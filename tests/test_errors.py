"""The error tree: documented, complete, and every dependency error mapped."""

from __future__ import annotations

import inspect
import os

import lmdb
import pyarrow as pa
import pytest

import incbt.errors as E


def _classes():
    return [c for _, c in inspect.getmembers(E, inspect.isclass) if issubclass(c, E.IncbtError)]


def test_every_error_class_is_drawn_in_the_docstring():
    for cls in _classes():
        assert cls.__name__ in E.__doc__, f"{cls.__name__} missing from the tree drawing"


def test_exit_codes():
    assert E.UsageError.exit_code == 2
    assert E.InternalError.exit_code == 3
    assert E.StoreLockedError.exit_code == 75  # busy: try again later (EX_TEMPFAIL)
    for cls in _classes():
        if not issubclass(cls, E.UsageError | E.InternalError | E.StoreLockedError):
            assert cls.exit_code == 1, cls


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (lmdb.MapFullError("full"), E.CatalogError),
        (lmdb.CorruptedError("bad"), E.CatalogError),
        (lmdb.Error("x"), E.CatalogError),
        (pa.ArrowInvalid("bad value"), E.BadInputError),
        (pa.ArrowTypeError("bad type"), E.BadInputError),
        (pa.ArrowIOError("io"), E.StoreError),
        # Arrow's out of memory is the machine's, as any MemoryError (it is one): said so
        # since QA 2026-12-07 (it was "a store problem")
        (pa.ArrowMemoryError("oom"), E.SetupError),
        (FileNotFoundError(2, "No such file", "x.parquet"), E.StoreError),
        (PermissionError(13, "Permission denied"), E.StoreError),
        (MemoryError(), E.SetupError),  # the machine's (or a step's allocations), not the store
        (RuntimeError("boom"), E.InternalError),
        (E.QueryError("already ours"), E.QueryError),
    ],
)
def test_dependency_errors_are_mapped(exc, expected):
    mapped = E.map_dependency_error(exc, "doing x")
    assert isinstance(mapped, expected)
    assert "doing x" in str(mapped) or mapped is exc


def test_datafusion_and_ray_errors_are_mapped():
    import datafusion

    ctx = datafusion.SessionContext()
    with pytest.raises(Exception) as info:
        ctx.sql("SELEC 1").collect()
    assert isinstance(E.map_dependency_error(info.value, "q"), E.QueryError)
    import ray.exceptions

    assert isinstance(E.map_dependency_error(ray.exceptions.RaySystemError("x"), "r"),
                      E.InternalError)


def test_bad_input_message_names_everything():
    e = E.BadInputError("close is not positive", file="a.csv", line=7, instrument="X",
                        value=-1.0, fix="prices must be > 0")
    assert str(e) == ("a.csv, line 7: close is not positive; instrument 'X'; value -1.0. "
                      "Fix: prices must be > 0")


def test_a_rename_refused_names_the_folder_it_went_to(tmp_path):
    """QA 2026-12-07: a results folder made read-only was said as the temp file alone."""
    import errno

    import incbt
    from incbt.errors import map_dependency_error

    s = incbt.init(str(tmp_path / "s"))
    src = os.path.join(s.path, "tmp", "results-daily-0000000002.parquet.tmp")
    dst = os.path.join(s.path, "results", "daily", "0000000002.parquet")
    said = str(map_dependency_error(PermissionError(errno.EACCES, "Permission denied", src,
                                                    None, dst), "incbt"))  # fmt: skip
    assert f"(moving {src} into {os.path.dirname(dst)})" in said, said
    assert "must be writable by this user" in said, said
