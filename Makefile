# The first two targets are the README's quick start: `make demo`, then `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench sysdeps bench-full clean

demo: $(VENV)/.installed
	$(BIN)/veilbox demo --workdir veilbox-demo --force

test: $(VENV)/.installed-dev sysdeps
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The query benchmark compares against SmartNoise SQL, which only the bench extra installs.
bench: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

bench-full: $(VENV)/.installed-dev
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks --full

# Confined Python jobs need bubblewrap; install it where we can (root with apt), otherwise
# such jobs are refused and the tests that need it say they were skipped. The console's
# browser tests drive Debian's chromium through chromium-driver (a CJK font makes their
# screenshots of the Chinese pages legible); without them those tests are skipped. The
# Spark backend needs a Java runtime; without one its engine tests are skipped.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-microhei
JAVA_PACKAGES := openjdk-17-jre-headless
sysdeps:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq bubblewrap >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }; }; } || \
	  echo "bubblewrap is not available: confined Python jobs will be refused"
	@{ command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null 2>&1; }; }; } || \
	  echo "chromium and chromium-driver are not available: the console's browser tests will be skipped"
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq $(JAVA_PACKAGES) >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(JAVA_PACKAGES) >/dev/null 2>&1; }; }; } || \
	  echo "java is not available: the Spark backend's tests will be skipped"

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.created
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) veilbox-demo .pytest_cache .mypy_cache .ruff_cache
