"""The public surface: `import incbt` gives a few names, sorted and deliberate."""

import types

import incbt


def test_all_is_sorted_and_complete():
    assert incbt.__all__ == sorted(incbt.__all__)
    # submodules become attributes once imported; every other public name is exported
    public = {n for n in dir(incbt) if not n.startswith("_")
              and not isinstance(getattr(incbt, n), types.ModuleType)}
    assert public - set(incbt.__all__) == set()
    for name in incbt.__all__:
        assert getattr(incbt, name) is not None


def test_open_and_init_are_the_entry_points():
    assert incbt.open.__name__ == "open_store"
    assert callable(incbt.init)
    assert issubclass(incbt.BadInputError, incbt.UserError)
    assert issubclass(incbt.UserError, incbt.IncbtError)


def test_dir_lists_what_loads_on_use():
    """``incbt.`` completes the lazily loaded names too (QA 2026-12-06), in a fresh
    process where none was used yet."""
    import subprocess
    import sys

    code = "import incbt; print(','.join(n for n in incbt.__all__ if n not in dir(incbt)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "", out
