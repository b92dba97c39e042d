# The two commands of the README:
#   make demo   set up .venv if needed, then run the engine's demo on the embedded default model
#   make test   set up .venv + test dependencies if needed, then the fast tier (not `slow`)
#   make test-slow   the `slow` tier (CI runs both: .ci/run)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-slow lint bench setup setup-dev
setup:
	@scripts/bootstrap.sh

setup-dev:
	@scripts/bootstrap.sh dev

demo: setup
	$(PY) -m streamer demo $(ARGS)

CODE := protocols model streamer tests bench examples

# Lint, format check and type check first (seconds), then the suite; each tier prints its time.
# pytest exit code 5 means "no tests collected": not a failure for CI.
TIER = start=$$(date +%s); $(PY) -m pytest -m "$(1)" $(ARGS); rc=$$?; \
	echo "make $(2): $$(( $$(date +%s) - start )) s (pytest exit $$rc)"; \
	[ $$rc -eq 5 ] && exit 0; exit $$rc

test: setup-dev lint
	@$(call TIER,not slow,test)

test-slow: setup-dev
	@$(call TIER,slow,test-slow)

lint: setup-dev
	$(PY) -m ruff check $(CODE)
	$(PY) -m ruff format --check $(CODE)
	$(PY) -m mypy protocols model streamer
