# Wavegate: `make run` for the demo, `make test` for the whole suite. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

# The suite runs against PostgreSQL; pytest-django creates and drops test_<name> itself.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/wavegate
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: install run test lint check-deploy services bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Wavegate needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --group dev
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: install
	$(BIN)/python scripts/demo.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-cache

# Django's deployment checks (and Wavegate's: a pinned scan image) with the production settings
# README.md documents, set to example values; any warning fails.
check-deploy: install
	@mkdir -p var && test -s var/check-deploy-audit.key || head -c 48 /dev/urandom | base64 > var/check-deploy-audit.key
	env DJANGO_DEBUG=false \
		DJANGO_SECRET_KEY=check-deploy-example-key-0123456789abcdefghijklmnopqrstuvwxyz \
		DJANGO_ALLOWED_HOSTS=wavegate.example.com \
		DJANGO_CSRF_TRUSTED_ORIGINS=https://wavegate.example.com \
		WAVEGATE_TRUSTED_PROXIES=10.0.0.2 \
		AZURE_ARM_ENDPOINT=https://management.azure.com \
		WAVEGATE_SCAN_IMAGE_DIGEST=sha256:0000000000000000000000000000000000000000000000000000000000000000 \
		WAVEGATE_AUDIT_HMAC_KEY_FILE=$(CURDIR)/var/check-deploy-audit.key \
		WAVEGATE_AUDIT_CHECKPOINT_FILE=/var/lib/wavegate-audit/checkpoints.jsonl \
		$(BIN)/python manage.py check --deploy --fail-level WARNING

services:
	bash scripts/ensure_services.sh
	bash scripts/ensure_test_tools.sh

test: install services lint check-deploy
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest $(PYTEST_ARGS)

bench: install
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) var
