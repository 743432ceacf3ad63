# Two commands for a fresh machine:
#   make run    set up and start the service on embedded defaults (SQLite, no Redis, CPU model)
#   make test   set up and run the checks and tests (ruff, mypy, pytest with Redis, PostgreSQL, a browser)
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Tests run against the real services this machine provides; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ragsite
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test setup setup-dev system-deps lint typecheck pytest bench demo-pdfs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

setup-dev: $(VENV)/.installed-dev

run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python scripts/serve.py --host $(HOST) --port $(PORT)

system-deps:
	bash scripts/system-deps.sh

lint: setup-dev
	$(BIN)/ruff check .

typecheck: setup-dev
	$(BIN)/mypy .

# Each run gets its own test database and broker key prefix, so runs on one machine never collide.
pytest: setup-dev
	RUN_ID=$$$$; DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	RAG_TEST_DATABASE_NAME=test_ragsite_$$RUN_ID RAG_BROKER_KEYPREFIX=test$$RUN_ID: \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: system-deps setup-dev lint typecheck pytest

bench: setup-dev
	$(BIN)/python -m bench.run

demo-pdfs: setup-dev
	$(BIN)/python scripts/make_demo_pdfs.py

clean:
	rm -rf var
