# Two commands for a fresh machine: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.coinstream-installed
NATIVE := $(VENV)/.coinstream-native-installed
# rustup puts cargo here; a shell that did not read its profile may not have it on PATH
export PATH := $(PATH):$(HOME)/.cargo/bin
# checkov scans the rendered templates in `make test` (tests/unit/test_deploy.py); it lives in a venv of its own (its pins are not ours).
CHECKOV := .tools/checkov/bin/checkov
# The dashboard's chart library, from the npm package into the Python package's static files (not committed).
CHARTS := warehouse/dashboard/static/vendor/echarts.min.js

.PHONY: setup prereqs browser demo test lint unit integration e2e down clean docs screenshots images bench

setup: prereqs $(STAMP) $(NATIVE) node_modules/.package-lock.json $(CHARTS)
# our own modules too (an editable install reads them here); only what changed since is compiled again
	@$(BIN)/python -m compileall -q -j 0 coinstream producer consumer warehouse operate benchmarks tests

prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (set PYTHON=/path/to/python3.11)")'
	@command -v java >/dev/null || { echo "Java >= 11 is required (17 is tested): install a JDK, e.g. apt-get install openjdk-17-jre-headless"; exit 1; }
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "Node >= 18 with npm is required: install Node.js"; exit 1; }

# The virtual environment, the Python packages, and the KCL jars (amazon-kclpy fetches them from Maven Central).
# uv installs them (~15 s; pip's resolver took ~75 s in a fresh clone), compiled to bytecode as pip would: uv does
# not by default, and where PYTHONDONTWRITEBYTECODE is set (as on CI's machines) every Python process then compiled
# each module it imported, every time (`coinstream analyze`: 8.0 s of CPU, 5.0 of them compiling; 2.8 s compiled).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/python -m uv pip install --quiet --compile-bytecode --python $(BIN)/python -e '.[dev]'
	$(BIN)/python -c 'from consumer.daemon import jar_dir; n = len(list(jar_dir().glob("*.jar"))); assert n > 50, f"only {n} KCL jars in {jar_dir()}"; print(f"{n} KCL jars in {jar_dir()}")'
	touch $(STAMP)

# The consumer's native path for posts (native/, Rust via maturin; crates from crates.io, pinned by Cargo.lock).
# Optional: without cargo the consumer runs its Python path for every record (its core about a quarter as fast).
# pip, not uv, builds it: uv would reuse its cached wheel after a change to src/lib.rs.
$(NATIVE): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs
	@if command -v cargo >/dev/null; then \
	  $(BIN)/python -m pip install --quiet ./native && touch $@; \
	elif [ -n "$$COINSTREAM_REQUIRE_NATIVE" ]; then \
	  echo "cargo is not installed: the native path cannot be built (install Rust: https://rustup.rs)"; exit 1; \
	else echo "cargo is not installed: posts take the consumer's Python path (install Rust for the native path)"; fi

# kinesis-mock (npm kinesis-local) and Apache ECharts, pinned by package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

$(CHARTS): node_modules/.package-lock.json
	mkdir -p $(@D)
	cp node_modules/echarts/dist/echarts.min.js $@
	cp node_modules/echarts/LICENSE $(@D)/echarts.LICENSE

# Debian's Chromium for the dashboard's browser test (never a browser that a tool downloads itself).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "the browser test needs Debian's chromium: sudo apt-get install chromium (it is skipped until then)"; fi; }

demo: setup
	$(BIN)/coinstream demo

$(CHECKOV): $(STAMP)
	$(PYTHON) -m venv .tools/checkov
	$(BIN)/python -m uv pip install --quiet --compile-bytecode --python .tools/checkov/bin/python checkov==3.3.30

lint: setup $(CHECKOV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
# cfn-lint and checkov scan both templates in tests/unit/test_deploy.py (beside the other tests, not before them)
	@if command -v cargo >/dev/null; then cd native && cargo fmt --check && cargo clippy --release --locked -q -- -D warnings; fi

unit: setup
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

e2e: setup
	$(BIN)/pytest tests/e2e

# Everything CI runs. pytest exits non-zero (5) when it collects no test, which fails this target too.
# TEST_WORKERS tests at a time (pytest-xdist): the KCL tests mostly wait on KCL's timers, so four share two
# cores (three left a core idle most of the run: 1.15 cores busy on average). Each test goes to whichever worker is free next, in collection order, which tests/conftest.py sorts
# longest first (with pytest 9 every test is its own "loadgroup" unit: xdist 3.8 cannot tag groups on its node ids).
# Six workers were slower than four (2026-12-08: the minutes-long KCL tests then share the cores).
# `make lint` runs beside the tests, not before them (its ~40 s of mypy and clippy while the first, longest tests
# wait on KCL's timers); its output follows theirs, and either failing fails `make test`. (Plain `make`: a line
# naming $(MAKE) runs even under `make -n`, and this one runs the tests.)
TEST_WORKERS ?= 4
test: setup browser $(CHECKOV)
	@mkdir -p .coinstream
	@make --no-print-directory lint >.coinstream/lint.log 2>&1 & linting=$$!; \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder tests/unit tests/integration tests/e2e; \
	tested=$$?; wait $$linting; linted=$$?; cat .coinstream/lint.log; \
	if [ $$linted != 0 ]; then echo "make lint failed (exit $$linted): see above"; exit $$linted; fi; exit $$tested

# Every benchmark at its documented size into benchmarks/results.json (about an hour here, three fresh-clone CI runs
# included), then the README's figures from it; the docs render theirs at each build. Commit the results file.
# BENCH="--only processor backfill" runs some; BENCH="--skip ci_run" all but the CI runs.
bench: setup
	$(BIN)/python -m benchmarks $(BENCH)
	$(BIN)/python -m benchmarks.report --readme

# The docs site (MkDocs, Material theme) into site/: a warning fails it. The command, settings and troubleshooting
# pages are written from the code as it builds (operate/reference.py). tests/unit/test_docs.py builds it in CI too.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The docs' pictures, taken by the browser tests from known data (never drawn by hand): commit what changed.
screenshots: setup browser
	COINSTREAM_SCREENSHOT=docs/assets/dashboard.png COINSTREAM_REPORT_SCREENSHOT=docs/assets/report.png \
	  $(BIN)/pytest -q -p no:randomly tests/integration/test_dashboard.py -k "every_chart or html_report"

# The container images, built without a registry (bases from Debian's packages; docker/README.md), each one's
# smoke command run. IMAGES="producer consumer" builds those only (what CI does).
images:
	bash docker/images.sh

down:
	$(BIN)/coinstream local down

clean: down
	rm -rf .coinstream
