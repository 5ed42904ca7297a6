# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3.12
# pyenv machines: pick the installed 3.12 unless told otherwise.
export PYENV_VERSION ?= 3.12.1
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: requirements-dev.lock tests/oidc_peer/package-lock.json tests/browser/package-lock.json clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	@# The client package (clients/python), editable; its one dependency, httpx, is in the lock.
	$(BIN)/pip install -q --no-deps -e clients/python
	@# The independent OAuth peer of the tests (panva's oidc-provider); skipped without npm.
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/oidc_peer --no-audit --no-fund --loglevel=error; \
		npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: tests against oidc-provider and axe-core will be skipped"; fi
	touch $@

.PHONY: install run test lint lock screenshots
install: $(VENV)/.installed

## Set up and run on embedded defaults: SQLite, the sandbox playing Google, no external server.
## `make run PORT=8100` serves on another port (SITE_URL and the sandbox's redirect URI follow).
PORT ?= 8000
run: export DEV_PORT = $(PORT)
run: install
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/honcho start -f Procfile.dev

## The test suite (DATABASE_URL / REDIS_URL pick PostgreSQL and Redis; SQLite otherwise).
test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

## Regenerate both lock files after changing pyproject.toml's dependencies (needs uv).
## requirements.lock: production (the runtime dependencies and the `production` extra,
## gunicorn; neither honcho nor the sandbox's django-oauth-toolkit).
## requirements-dev.lock: everything `make run` and `make test` need (the dev group,
## the `dev` extra: honcho and django-oauth-toolkit, and `production`).
lock:
	uv pip compile pyproject.toml --extra production --python-version 3.12 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --group dev --extra dev --extra production --python-version 3.12 --generate-hashes -o requirements-dev.lock

## The README's screenshots (docs/screenshots/): the every-page browser test saves the
## Integrations page and an app page at desktop and phone widths.
screenshots: install
	SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser/test_pages.py -q -p no:cacheprovider -k "integrations or app_page"
