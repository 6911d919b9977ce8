# The two quick-start commands:  make demo   and   make test
# Both set up what they need on a fresh Debian 12 machine (python3-venv and a virtualenv with
# pinned packages; for the tests also Debian's debootstrap, bubblewrap, chromium and postgresql
# and a real Caffe 1.0 root).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CAFFE_ROOT ?= /var/cache/upcall/caffe-bullseye
export UPCALL_CAFFE_ROOT := $(CAFFE_ROOT)

.PHONY: demo test lint caffe chromium postgresql venv

venv: $(VENV)/.installed

# Debian's python3 makes a virtualenv only with python3-venv (ensurepip) installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || bash scripts/apt-install.sh make-venv python3-venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

demo: venv
	$(BIN)/upcall demo --out runs/demo

caffe:
	bash scripts/install-caffe.sh --with-host-packages $(CAFFE_ROOT)

# Debian's chromium and chromium-driver: the headless browser of the HTML page tests.
chromium:
	bash scripts/install-chromium.sh

# Debian's postgresql: the test of `upcall search` workers sharing a study starts its own server.
postgresql:
	bash scripts/install-postgresql.sh

# lint-imports: the contracts in .importlinter (the stage order, no import cycles, where torch
# may be imported)
lint: venv
	$(BIN)/ruff check upcall tests benchmarks scripts
	$(BIN)/lint-imports
	$(BIN)/python -m upcall.proto.regenerate --check

# UPCALL_REQUIRE_CAFFE=1: the real-Caffe tests fail instead of skipping when Caffe is absent;
# UPCALL_REQUIRE_POSTGRES=1 likewise for the PostgreSQL test.
test: venv caffe chromium postgresql lint
	UPCALL_REQUIRE_CAFFE=1 UPCALL_REQUIRE_POSTGRES=1 $(BIN)/python -m pytest -q
