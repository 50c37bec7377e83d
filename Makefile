# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
DURATION ?= 90
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint typecheck chromium bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/creditwatch demo $(if $(filter-out 0,$(DURATION)),--duration $(DURATION))

lint: install
	$(BIN)/ruff check service workers config tests bench
	$(BIN)/ruff format --check service workers config tests bench

typecheck: install
	$(BIN)/mypy

# Redis: $$CREDITWATCH_TEST_REDIS_URL, else 127.0.0.1:6379 if it answers, else an embedded one.
test: lint typecheck chromium
	$(BIN)/pytest

# Best effort, never fails: Debian's chromium for the status-page browser test, when missing
# and we are root with apt. Elsewhere that test skips and says why.
chromium:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the status-page test (apt-get)"; \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
			|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends chromium; } ) >/dev/null 2>&1 \
			|| echo "chromium could not be installed: its test will skip"; \
	else \
		echo "chromium not installed (needs root and apt-get): the browser test will skip"; \
	fi

clean:
	rm -rf $(VENV) .creditwatch .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (not part of the tests): each prints its figures and appends to bench/RESULTS.md.
# Run one at a time: they share the cores. About 8 minutes on 2 cores.
bench: install
	$(BIN)/python -m bench.publish_throughput
	$(BIN)/python -m bench.detector_throughput
	$(BIN)/python -m bench.poll_cycle
	$(BIN)/python -m bench.alert_latency
	$(BIN)/python -m bench.memory
