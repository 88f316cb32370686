# Two commands on a fresh machine (see README.md):  make demo  then  make test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The oldest Parsl pyproject.toml admits; `make test-floor` runs the tests that depend on
# Parsl's API (config core and pipelines) against it.
PARSL_FLOOR := $(shell sed -n 's/.*"parsl>=\([0-9.]*\)".*/\1/p' pyproject.toml)
FLOOR_TESTS ?= tests/base/test_run_dir.py tests/base/test_say_it_once.py \
	tests/config/test_check.py tests/config/test_check_knows.py tests/config/test_build.py tests/config/test_find.py tests/config/test_templates.py tests/config/test_check_limits.py tests/config/test_check_starts.py tests/config/test_hints.py tests/config/test_lookup_reuse.py \
	tests/cli/test_cli.py \
	tests/qiime2 \
	tests/parsl/test_pool.py tests/parsl/test_typecache.py tests/parsl/test_pickling.py tests/parsl/test_tasklog.py \
	tests/supervise/test_stalls.py tests/supervise/test_abandon.py \
	tests/observe/test_trace.py tests/observe/test_report_damaged.py tests/observe/test_notebook.py \
	tests/observe/test_replay.py tests/observe/test_replay_timing.py tests/observe/test_tune.py \
	tests/pipeline/test_pipeline.py tests/pipeline/test_nesting.py tests/pipeline/test_session.py tests/pipeline/test_transport.py tests/pipeline/test_sessions.py tests/pipeline/test_modes.py tests/pipeline/test_window.py tests/pipeline/test_step_shapes.py tests/pipeline/test_checkpoints.py \
	tests/package/test_security.py tests/package/test_import.py tests/package/test_portable.py tests/package/test_readme.py

.PHONY: demo test test-floor floor-run lint bench conda docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' $(EXTRA_PACKAGES)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/amplicon.py

# The docs extra (MkDocs, mkdocs-material, mkdocstrings): `make docs`, and the tests that build
# the site (tests/package/test_docs_site.py), need it.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)
test: $(DOCS_STAMP)

# The site (mkdocs.yml, docs/) into site/, offline; --strict: a warning (a broken link) fails
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# The suite runs in TEST_WORKERS pytest-xdist processes (most tests wait on subprocesses, so
# more workers than CPUs pay off); tests that share a cluster or a build stay on one worker
# (tests/conftest.py). TEST_WORKERS=0 runs it in this process alone. Tests marked `timing`
# compare wall times with a prediction: they run after the others, alone on the machine.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not timing"
	$(BIN)/python -m pytest -m timing

# make test-floor PYTHON=python3.10: Parsl $(PARSL_FLOOR) in its own virtualenv
test-floor:
	$(MAKE) VENV=.venv-parsl-$(PARSL_FLOOR) EXTRA_PACKAGES='parsl==$(PARSL_FLOOR)' \
		PYTEST_ARGS='$(wildcard $(FLOOR_TESTS))' floor-run
floor-run: $(STAMP)
	$(BIN)/python -c 'import parsl; from packaging.version import Version as V; assert V(parsl.__version__) == V("$(PARSL_FLOOR)"), parsl.__version__'
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not timing" $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m timing $(PYTEST_ARGS) || [ $$? -eq 5 ]  # 5: none selected

lint: $(STAMP)
	$(BIN)/python -m flake8 q2pconf tests benchmarks examples recipe tools
	$(BIN)/python tools/check_layers.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks

conda: $(STAMP)
	$(BIN)/python recipe/build_conda.py --output-dir dist/conda
