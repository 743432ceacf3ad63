# Two commands for a fresh machine:
#   make run    set up and start the service on embedded defaults (SQLite, no Redis, CPU model)
#   make test   set up and run the checks and tests (ruff, import contracts, mypy, pytest with Redis,
#               PostgreSQL, a browser)
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

# llama-cpp-python compiles llama.cpp for this CPU's vector instructions, but never its AMX kernels: they
# crash (SIGSEGV in ggml_backend_amx_mul_mat) on machines whose CPU reports AMX while the system does
# not let a process use its tile registers, as on the 2-core test machines.
CPU_FLAGS := $(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	$(if $(findstring avx512f,$(CPU_FLAGS)),-DGGML_AVX512=ON) \
	$(if $(findstring avx512_vnni,$(CPU_FLAGS)),-DGGML_AVX512_VNNI=ON) \
	$(if $(findstring avx512_bf16,$(CPU_FLAGS)),-DGGML_AVX512_BF16=ON)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	CMAKE_ARGS="$(strip $(LLAMA_CMAKE_ARGS))" $(BIN)/pip install -r requirements.txt
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
	$(BIN)/lint-imports

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
