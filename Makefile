# The few commands everybody runs. `make run` and `make test` do all set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install lint format bench clean

run: install
	$(BIN)/scrm db upgrade
	$(BIN)/scrm demo load
	$(BIN)/scrm serve --host 127.0.0.1 --port 8000 --demo-fakes

test:
	bash scripts/test

install:
	bash scripts/install

lint: install
	$(BIN)/ruff check scrm tests bench migrations
	$(BIN)/ruff format --check scrm tests bench migrations
	$(BIN)/mypy

format: install
	$(BIN)/ruff format scrm tests bench migrations
	$(BIN)/ruff check --fix scrm tests bench migrations

clean:
	rm -rf var/scrm.db* .pytest_cache .mypy_cache .ruff_cache
