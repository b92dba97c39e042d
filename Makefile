# The two commands of the README:
#   make demo   set up .venv if needed, then run the engine's demo on the embedded default model
#   make test   set up .venv + test dependencies if needed, then run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench setup setup-dev
setup:
	@scripts/bootstrap.sh

setup-dev:
	@scripts/bootstrap.sh dev

demo: setup
	$(PY) -m streamer demo $(ARGS)

CODE := protocols model streamer tests bench examples

# Lint, format check and type check first (seconds), then the suite.
# pytest exit code 5 means "no tests collected": not a failure for CI.
test: setup-dev lint
	$(PY) -m pytest $(ARGS); rc=$$?; [ $$rc -eq 5 ] && exit 0; exit $$rc

lint: setup-dev
	$(PY) -m ruff check $(CODE)
	$(PY) -m ruff format --check $(CODE)
	$(PY) -m mypy protocols model streamer
