# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV := .venv
BIN := $(abspath $(VENV))/bin
# .python-version names the interpreter; pyenv (when present) resolves it, else any python3.12+ on PATH.
SYSTEM_PYTHON ?= $(shell pyenv which python3 2>/dev/null || command -v python3.13 || command -v python3.12 || command -v python3)

.PHONY: run test lint format bench clean lambda-package

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(SYSTEM_PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "offload needs Python 3.12+, found " + sys.version.split()[0] + " (delete .venv and set SYSTEM_PYTHON)")'
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

test: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python deploy/check.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python deploy/check.py

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole site on loopback: a local SQS server, Django on http://127.0.0.1:8000, a worker and the
# scheduler. Any AWS credentials do for the local server; real ones in the environment are not used.
run: $(VENV)/.installed
	PATH=$(BIN):$$PATH AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
		SQS_ENDPOINT_URL=http://127.0.0.1:9324 $(BIN)/honcho start -f Procfile.dev

# build/lambda/offload-lambda.zip for deploy/template.yaml: Linux x86_64 wheels, whatever this machine is.
lambda-package: $(VENV)/.installed
	$(BIN)/python deploy/package.py

bench: $(VENV)/.installed
	PATH=$(BIN):$$PATH $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles build
