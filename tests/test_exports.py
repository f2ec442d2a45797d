"""The public surface: `import incbt` gives a few names, sorted and deliberate."""

import incbt


def test_all_is_sorted_and_complete():
    assert incbt.__all__ == sorted(incbt.__all__)
    public = {n for n in dir(incbt) if not n.startswith("_")}
    submodules = {"bars", "catalog", "engine", "errors", "progress", "query", "queries", "runs",
                  "render", "settings", "store", "cli", "plan", "execute", "results"}
    assert public - submodules - set(incbt.__all__) == set()


def test_open_and_init_are_the_entry_points():
    assert incbt.open.__name__ == "open_store"
    assert callable(incbt.init)
    assert issubclass(incbt.BadInputError, incbt.UserError)
    assert issubclass(incbt.UserError, incbt.IncbtError)
