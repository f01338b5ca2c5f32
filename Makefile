# Two entry points for a fresh Debian machine with Python 3.11 and root:
#   make demo   set up, start local servers, apply every revision, check, status
#   make test   set up and run the whole test suite (what .ci/run runs)

VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup system-packages pgext demo test test-slow down bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Server binaries from Debian when the machine lacks them (redis-server, PostgreSQL, Prometheus for doctor's tests).
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || missing="$$missing pgbouncer"; \
	command -v redis-sentinel >/dev/null 2>&1 || missing="$$missing redis-sentinel"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	ls /usr/include/postgresql/*/server/postgres.h >/dev/null 2>&1 || missing="$$missing postgresql-server-dev-15"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

setup: system-packages $(STAMP) pgext

# The audit trail's native capture (pgext/sovren_audit, a PGXS library); the test harness loads it from there.
# Without PGXS (no server headers) the audit trail keeps its plpgsql capture: said, not failed.
pgext: system-packages
	@if ls /usr/include/postgresql/*/server/postgres.h >/dev/null 2>&1; then \
		$(MAKE) -C pgext/sovren_audit; \
	else echo "pgext: no PostgreSQL server headers (postgresql-server-dev-15): the audit trail will use plpgsql"; fi

demo: setup
	$(BIN)/sovren-db up
	$(BIN)/sovren-db migrate
	$(BIN)/sovren-db check
	@# status exits 1 while a store's steps wait (MongoDB without mongod): show it, fail only on errors
	$(BIN)/sovren-db status; test $$? -le 1

# The audit tests run again on the plpgsql capture (the fallback where the C library cannot load).
AUDIT_TESTS = tests/integration/test_audit_trail.py tests/integration/test_audit_bulk.py tests/integration/test_audit_partition_advice.py tests/integration/test_audit_attack.py tests/integration/test_audit_native.py tests/integration/test_audit_truncate.py tests/integration/test_audit_partitions_dml.py tests/integration/test_audit_rows.py tests/integration/test_audit_columns_match.py tests/compliance/test_audit_verify.py tests/compliance/test_audit_seal.py

test: setup
	$(BIN)/python -m pytest -q
	SOVREN_DB_AUDIT_CAPTURE=plpgsql $(BIN)/python -m pytest -q -m "not slow" $(AUDIT_TESTS)

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

down:
	$(BIN)/sovren-db down

# Helpers the bench scripts import (not run on their own); every other bench/*.py must accept --smoke.
BENCH_HELPERS := alembic_utils_cost big_schema plain_env seed_legacy smoke
BENCH_SCRIPTS := $(filter-out $(BENCH_HELPERS:%=bench/%.py),$(sort $(wildcard bench/*.py)))

$(VENV)/.bench-installed: pyproject.toml | $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: setup $(VENV)/.bench-installed
	@for b in $(BENCH_SCRIPTS); do echo "== $$b"; $(BIN)/python $$b || exit $$?; done

# Every benchmark at a tiny size, so one that no longer runs fails CI (.ci/run) the day it breaks.
bench-smoke: setup $(VENV)/.bench-installed
	@failed=""; for b in $(BENCH_SCRIPTS); do \
		echo "== $$b --smoke"; start=$$(date +%s); \
		$(BIN)/python $$b --smoke || failed="$$failed $$b"; \
		echo "== $$b: $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "bench-smoke: failed:$$failed"; exit 1; fi

clean:
	-$(BIN)/sovren-db down
	rm -rf $(VENV) .sovren .pytest_cache
