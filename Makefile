# imapha: the two commands of README.md.
#   make demo   create .venv, install imapha, run the demo
#   make test   install what the suite needs (Debian packages too, when root), then
#               ruff, mypy --strict and the whole pytest suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

# Debian packages the test suite and benchmarks drive as real peers.
# One package per line: adding a peer is a one-line change.
APT_PACKAGES := \
	iproute2 \
	iputils-ping \
	nftables \
	procps \
	dovecot-imapd \
	dovecot-lmtpd \
	keepalived \
	isc-dhcp-client \
	isc-dhcp-relay \
	udhcpc \
	haproxy \
	nginx \
	prometheus \
	postgresql \
	libnginx-mod-mail

# Baselines only the benchmarks run against (not needed by the tests).
BENCH_APT_PACKAGES := \
	kea-admin \
	kea-dhcp4-server

BENCHES := imap_parse maildir_store server_fetch server_bench proxy_bench vip_failover \
	dhcp_codec dhcp_perf

PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest venv system-deps bench bench-deps apt-install clean

$(BIN)/.stamp: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.stamp

system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

bench-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES) $(BENCH_APT_PACKAGES)"

apt-install:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else \
	  echo "not root: Debian packages not installed; tests needing them will skip (and fail under CI=true)"; \
	fi

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

pytest: venv
	$(BIN)/pytest $(PYTEST_ARGS)

test: system-deps venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

demo: system-deps venv
	$(BIN)/imapha demo

# Every benchmark, one after another (several minutes; each prints same-run ratios).
bench: bench-deps venv
	for b in $(BENCHES); do echo "== $$b"; $(BIN)/python -m bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
