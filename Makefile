# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
DURATION ?= 90
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-shifted test-rules lint typecheck chromium promtool kubectl \
	alertmanager prometheusrule bench clean

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
test: lint typecheck chromium kubectl test-rules
	$(BIN)/pytest

# The fast loop: tests/unit only (no Redis, no network), in seconds.
test-unit: install
	$(BIN)/pytest -m unit tests/unit

# The Prometheus rules checked and unit-tested (deploy/prometheus/*_test.yml) by promtool.
test-rules: promtool
	@if command -v promtool >/dev/null 2>&1; then \
		promtool check rules deploy/prometheus/rules.yml && \
		promtool test rules deploy/prometheus/*_test.yml; \
	else \
		echo "SKIPPED test-rules: promtool not installed (Debian's prometheus package ships it)"; \
	fi

# deploy/kubernetes/base/prometheusrule.yaml from deploy/prometheus/rules.yml (a test compares).
prometheusrule:
	$(PYTHON) deploy/kubernetes/prometheusrule.py

# The whole suite again with the clock 400 days ahead (Debian's faketime preloads libfaketime):
# no test may depend on the day it was written. Servers the tests start keep the real clock.
test-shifted: install
	@command -v faketime >/dev/null 2>&1 || { echo "test-shifted needs Debian's faketime (apt-get install faketime)"; exit 2; }
	faketime -f +400d $(BIN)/pytest -p no:cacheprovider

# Best effort, never fails: Debian's chromium for the status-page browser test, prometheus for
# its promtool (test-rules; its service is not started in a container) and kubernetes-client for
# kubectl (the test that renders deploy/kubernetes with `kubectl kustomize`), when missing and
# we are root with apt. Elsewhere those tests skip and say why.
chromium:
	@$(call apt_best_effort,chromium chromium-browser,chromium,the browser test will skip)

promtool:
	@$(call apt_best_effort,promtool,prometheus,test-rules will skip)

kubectl:
	@$(call apt_best_effort,kubectl,kubernetes-client,the kustomize render test will skip)

# $(call apt_best_effort,commands (any one will do),package,what happens without it)
define apt_best_effort
	if ( for c in $(1); do command -v $$c >/dev/null 2>&1 && exit 0; done; exit 1 ); then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(2) for $(firstword $(1)) (apt-get)"; \
		( DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) \
			|| { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
				--no-install-recommends $(2); } ) >/dev/null 2>&1 \
			|| echo "$(2) could not be installed: $(3)"; \
	else \
		echo "$(firstword $(1)) not installed (needs root and apt-get): $(3)"; \
	fi
endef

# Best effort, never fails: Debian's Prometheus Alertmanager, the peer benchmark 7 measures
# creditwatch's delivery against. Without it that benchmark says how to install it and exits.
alertmanager:
	@$(call apt_best_effort,prometheus-alertmanager alertmanager,prometheus-alertmanager,benchmark 7 will say so)

clean:
	rm -rf $(VENV) .creditwatch .mypy_cache .ruff_cache .pytest_cache

# Benchmarks (not part of the tests): each prints its figures and appends to bench/RESULTS.md.
# Run one at a time: they share the cores (about 30 minutes on 2). In the README's order.
bench: install alertmanager
	$(BIN)/python -m bench.publish_throughput
	$(BIN)/python -m bench.detector_throughput
	$(BIN)/python -m bench.poll_cycle
	$(BIN)/python -m bench.alert_latency
	$(BIN)/python -m bench.memory
	$(BIN)/python -m bench.detection_delay
	$(BIN)/python -m bench.delivery_vs_alertmanager
	$(BIN)/python -m bench.status_page
