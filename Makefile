# Two entry points (see README): `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# CPU wheel of torch (the project works with any torch >= 2.4; set TORCH_SPEC= to keep yours)
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# the browser test drives Debian's Chromium through Playwright
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test install chromium clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	@echo "installing medmoe-lm-eval with all extras (llama-cpp-python compiles once, ~5-8 min on 2 cores)"
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medmoe demo

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Chromium for the browser test: installed when missing and we may (root with apt-get, as in CI);
# otherwise one line says why that test will skip.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "the browser test will skip: apt-get could not install chromium (see above)"; \
	else \
	  echo "the browser test will skip: $(CHROMIUM) is missing and installing it needs root and apt-get (sudo apt-get install chromium)"; \
	fi

clean-venv:
	rm -rf $(VENV)
