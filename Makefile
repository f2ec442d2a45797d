# The verbs people use. Each target bootstraps .venv from the pinned lock file.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba-cache
export RAY_AUTH_MODE ?= disabled

.PHONY: venv demo test bench lint lock clean

.venv/bin/python:
	$(PY) -m venv .venv

$(STAMP): requirements.lock pyproject.toml .venv/bin/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m compileall -q incbt  # bytecode cached even under PYTHONDONTWRITEBYTECODE
	rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

# The main job on the embedded default store ./store: generate, ingest, correct a day,
# backtest a grid, absorb a new day, and show SQL answers and the event log.
demo: $(STAMP)
	@bash scripts/demo.sh

# The report test renders HTML in headless Chromium; install it where missing (or skip).
# Tests run on a process per core (at most 4; the Ray tests together on one, with one Ray).
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium could not be installed: the report rendering test will skip"; }
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadgroup

# Peers that are not our dependencies (vectorbt) live in their own environment.
BENCH_STAMP := .venv-bench/.installed-$(shell cat benchmarks/requirements-bench.txt 2>/dev/null | cksum | cut -d' ' -f1)
$(BENCH_STAMP): benchmarks/requirements-bench.txt
	test -x .venv-bench/bin/python || $(PY) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --disable-pip-version-check -r benchmarks/requirements-bench.txt
	rm -f .venv-bench/.installed-* && touch $@

bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_sql_files.py
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_engine_kernel.py
	$(BIN)/python benchmarks/bench_update.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_trades.py

lint: $(STAMP)
	$(BIN)/ruff check incbt tests benchmarks
	$(BIN)/ruff format --check incbt
	$(BIN)/mypy incbt

# Re-pin: resolve the newest versions and record exactly what was installed.
lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e '.[dev]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .venv-bench .numba-cache demo-data bench-out
