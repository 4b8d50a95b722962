# vidq — `make run` starts the service, `make test` runs the tests, `make install` puts the
# `vidq` command on your PATH.
PYTHON ?= python3
# Where `make install` links the command: a folder on your PATH.
BIN_DIR ?= $(HOME)/.local/bin
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The browser libraries the page bundles (npm packages), copied by `make vendor` into
# vidq/web/static/vendor: the players, and the resumable-upload client.
HLS_JS_VERSION := 1.7.4
DASHJS_VERSION := 5.2.1
TUS_JS_VERSION := 4.3.1
# Swagger UI for /docs (npm swagger-ui-dist), copied by `make vendor-docs` (and `make vendor`)
# into vidq/web/static/vendor/swagger-ui.
SWAGGER_UI_VERSION := 5.35.0

.PHONY: run install uninstall test check fuzz bench vendor vendor-docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

run: $(STAMP)
	$(BIN)/vidq serve

# A link to this checkout's .venv/bin/vidq: it runs this code with the packages of .venv,
# so it keeps working as long as the checkout and its .venv stay where they are.
install: $(STAMP)
	@if [ -e "$(BIN_DIR)/vidq" ] && [ ! -L "$(BIN_DIR)/vidq" ]; then \
	  echo "$(BIN_DIR)/vidq exists and is not a link: left alone (remove it, or pick BIN_DIR=...)"; \
	  exit 1; fi
	mkdir -p "$(BIN_DIR)"
	ln -sfn "$(CURDIR)/$(BIN)/vidq" "$(BIN_DIR)/vidq"
	@echo "vidq: $(BIN_DIR)/vidq -> $(CURDIR)/$(BIN)/vidq"
	@case ":$$PATH:" in *":$(BIN_DIR):"*) ;; \
	  *) echo "$(BIN_DIR) is not on your PATH; add it, e.g.:"; \
	     echo "  echo 'export PATH=\"$(BIN_DIR):\$$PATH\"' >> ~/.profile && . ~/.profile" ;; esac

uninstall:
	@if [ "$$(readlink "$(BIN_DIR)/vidq")" = "$(CURDIR)/$(BIN)/vidq" ]; then \
	  rm "$(BIN_DIR)/vidq" && echo "removed $(BIN_DIR)/vidq"; \
	else echo "$(BIN_DIR)/vidq is not this checkout's link: left alone"; fi

test: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

check: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fuzz: $(DEV_STAMP)
	$(BIN)/pytest tests/test_fuzz.py -m fuzz $(PYTEST_ARGS)

bench: $(DEV_STAMP)
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/upload.py
	$(BIN)/python bench/cancel.py

vendor: vendor-docs
	scripts/vendor-players.sh $(HLS_JS_VERSION) $(DASHJS_VERSION) $(TUS_JS_VERSION)

vendor-docs:
	scripts/vendor-docs.sh $(SWAGGER_UI_VERSION)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
