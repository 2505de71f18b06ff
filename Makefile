# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
VENV := .venv
BIN := $(abspath $(VENV))/bin
# .python-version names the interpreter; pyenv (when present) resolves it, else any python3.12+ on PATH.
SYSTEM_PYTHON ?= $(shell pyenv which python3 2>/dev/null || command -v python3.13 || command -v python3.12 || command -v python3)

.PHONY: run test test-sqlite test-postgres lint format bench clean lambda-package

$(VENV)/.installed: setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(SYSTEM_PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "offload needs Python 3.12+, found " + sys.version.split()[0] + " (delete .venv and set SYSTEM_PYTHON)")'
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# The suite runs twice: on SQLite (what `make run` uses) and on a throwaway PostgreSQL server that
# tests/postgres.py starts and stops. Without PostgreSQL binaries the second run is skipped and says
# so; POSTGRES_REQUIRED=true (CI) makes that an error. The SQLite run drops any DATABASE_URL for the
# settings' default file; never point it at sqlite:// (in memory): the live server would then share
# one connection between threads, which crashes the process.
PYTEST = $(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint
	env -u DATABASE_URL $(PYTEST)
	$(BIN)/python -m tests.postgres -- $(PYTEST)

test-sqlite: $(VENV)/.installed
	env -u DATABASE_URL $(PYTEST)

test-postgres: $(VENV)/.installed
	$(BIN)/python -m tests.postgres -- $(PYTEST)

# ruff (lint, complexity, format), mypy on the packages pyproject.toml's [tool.mypy] names, and the
# deployment template (cfn-lint and the SAM transform, offline).
lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python deploy/check.py

format: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The whole site on loopback: a local SQS server, Django on http://127.0.0.1:8000, a worker and the
# scheduler. Any AWS credentials do for the local server; real ones in the environment are not used.
# The local server also makes the S3 bucket that messages larger than SQS takes go through.
run: $(VENV)/.installed .env
	PATH=$(BIN):$$PATH AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
		SQS_ENDPOINT_URL=http://127.0.0.1:9324 SQS_PAYLOAD_BUCKET=offload-local-payloads \
		$(BIN)/honcho start -f Procfile.dev

# Local settings, made once and kept out of git: every process of `make run` (honcho reads this file)
# and every manage.py command typed by hand (web/settings.py reads it) share this one SECRET_KEY, so
# a link the worker signs verifies in the web process, and sessions survive restarts.
.env: | $(VENV)/.installed
	@umask 077 && { \
		echo '# Local settings for make run and manage.py; never commit. Production sets real variables.'; \
		echo 'DEBUG=true'; \
		echo "SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))')"; \
	} > $@.tmp && mv $@.tmp $@
	@echo "Wrote $@ (DEBUG and a SECRET_KEY for local work)."

# build/lambda/offload-lambda.zip for deploy/template.yaml: Linux x86_64 wheels, whatever this machine is.
lambda-package: $(VENV)/.installed
	$(BIN)/python deploy/package.py

bench: $(VENV)/.installed
	PATH=$(BIN):$$PATH $(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles build
