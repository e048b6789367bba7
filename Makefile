# cyborg-nova developer tasks.  `make help` lists them.
#
# The virtualenv is $(VENV) (default .venv).  Dependencies are installed
# once per content of constraints.txt, requirements*.txt and setup.cfg
# (a stamp named after their hash); the package itself is reinstalled,
# non-editable and without dependencies, whenever a file under cyborg_nova/
# or nova/ is newer than its stamp, so that nova/virt/cyborg_nova.py lands
# inside Nova's installed nova/virt/ and `cyborg-nova` runs current code.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV ?= .venv
override VENV := $(patsubst %/,%,$(VENV))
VENV_ABS := $(abspath $(VENV))
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip

# python3.11, else python3 when it is 3.11.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || { \
    python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    2>/dev/null && command -v python3; } || true)

# Build tools in the venv, pinned here because --no-build-isolation uses
# them (constraints.txt pins the rest).
BOOTSTRAP := pip==26.3 setuptools==84.2.1 wheel==0.48.0

DEP_FILES := constraints.txt $(sort $(wildcard requirements*.txt)) \
    test-requirements.txt setup.cfg
DEP_HASH := $(shell { cat $(DEP_FILES); echo '$(BOOTSTRAP)'; } \
    | sha256sum | cut -c1-16)
DEPS_STAMP := $(VENV)/.cyborg-nova-deps-$(DEP_HASH)
PKG_STAMP := $(VENV)/.cyborg-nova-pkg
PKG_FILES := $(wildcard setup.cfg setup.py pyproject.toml MANIFEST.in README.rst)

# pbr takes the version from git; outside a git checkout give it one.
ifneq ($(shell git rev-parse --is-inside-work-tree 2>/dev/null),true)
export PBR_VERSION ?= 0.0.0
endif

# The environment Nova's functional tests need (as Nova's own tox.ini).
TEST_ENV := \
    OS_WSGI__API_PASTE_CONFIG=$(VENV_ABS)/etc/nova/api-paste.ini \
    NOVA_RAISE_ON_GREENLET_LEAK=True \
    OS_NOVA_DISABLE_EVENTLET_PATCHING=False \
    OS_TEST_TIMEOUT=160 \
    OS_STDOUT_CAPTURE=1 \
    OS_STDERR_CAPTURE=1 \
    OS_LOG_CAPTURE=1 \
    PATH=$(VENV_ABS)/bin:$$PATH
CONCURRENCY ?= 2
STESTR := $(TEST_ENV) tools/run-stestr.sh $(VENV) --concurrency $(CONCURRENCY)

.PHONY: help sysdeps venv pkg test unit functional demo bench pep8 \
    genconfig docs clean distclean

help:
	@echo 'make sysdeps     check (as root: install) the Debian packages needed'
	@echo 'make venv        create or update $(VENV) and install the package'
	@echo 'make test        sysdeps + venv, then unit and functional tests'
	@echo 'make unit        unit tests only'
	@echo 'make functional  Nova functional tests only'
	@echo 'make demo        an embedded cloud: cyborg-nova vs stock Nova on GPU hosts'
	@echo 'make bench       scheduler benchmarks'
	@echo 'make pep8        flake8 with hacking'
	@echo 'make genconfig   regenerate etc/cyborg-nova/cyborg-nova.conf.sample'
	@echo 'make docs        build the HTML documentation'
	@echo 'make clean       remove build and test artefacts (distclean: and $(VENV))'
	@echo 'Variables: VENV=$(VENV) CONCURRENCY=$(CONCURRENCY) PYTHON=$(PYTHON)'

sysdeps:
	@tools/ensure-system-packages.sh

venv: $(DEPS_STAMP) pkg

$(DEPS_STAMP):
	@if [[ ! -x $(VPY) ]]; then \
	    if [[ -z "$(PYTHON)" ]]; then \
	        echo 'error: Python 3.11 not found (tried python3.11, python3);' \
	             'install it or run make PYTHON=/path/to/python3.11' >&2; \
	        exit 1; \
	    fi; \
	    echo '==> creating $(VENV) with $(PYTHON)'; \
	    $(PYTHON) -m venv $(VENV); \
	fi
	@echo '==> installing dependencies into $(VENV) (pins: constraints.txt)'
	@{ $(PIP) install -q --disable-pip-version-check $(BOOTSTRAP) && \
	   $(PIP) install -q --disable-pip-version-check -c constraints.txt \
	     $(addprefix -r ,$(sort $(wildcard requirements*.txt)) \
	     test-requirements.txt); } >$(VENV)/.cyborg-nova-deps.log 2>&1 || \
	    { tail -n 40 $(VENV)/.cyborg-nova-deps.log >&2; \
	      echo 'error: pip failed, full log: $(VENV)/.cyborg-nova-deps.log' >&2; \
	      exit 1; }
	@rm -f $(VENV)/.cyborg-nova-deps-* $(PKG_STAMP)
	@touch $@

# Reinstalled when the stamp is missing or any source file is newer.  Not
# expressed as make prerequisites: fixture paths hold colons (0000:3b:00.0).
# build/ goes first: setuptools never prunes it, so a module deleted from
# the tree would otherwise still be installed.
pkg: $(DEPS_STAMP)
	@if [[ ! -e $(PKG_STAMP) ]] || [[ -n "$$(find cyborg_nova nova $(PKG_FILES) \
	        -newer $(PKG_STAMP) -type f ! -name '*.pyc' \
	        ! -path '*/__pycache__/*' -print -quit)" ]]; then \
	    echo '==> installing cyborg-nova into $(VENV) (non-editable)'; \
	    touch $(PKG_STAMP).new; \
	    rm -rf build; \
	    $(PIP) install -q --disable-pip-version-check --no-deps \
	        --no-build-isolation --force-reinstall . \
	        >$(PKG_STAMP).log 2>&1 || { cat $(PKG_STAMP).log >&2; exit 1; }; \
	    mv $(PKG_STAMP).new $(PKG_STAMP); \
	fi

test: sysdeps venv
	@echo '==> unit and functional tests'
	@$(STESTR)

unit: venv
	@$(STESTR) cyborg_nova.tests.unit

functional: venv
	@$(STESTR) cyborg_nova.tests.functional

# make demo DEMO_ARGS='--cpu-allocation-ratio 1.0' (see --help).
DEMO_ARGS ?=
demo: sysdeps venv
	@$(TEST_ENV) $(VPY) -m cyborg_nova.demo $(DEMO_ARGS)
	@echo
	@echo '==> cyborg-nova discover (the accelerators of this machine)'
	@$(VENV)/bin/cyborg-nova discover

bench: venv
	@if [[ -e cyborg_nova/tests/bench.py || \
	       -e cyborg_nova/tests/bench/__main__.py ]]; then \
	    $(TEST_ENV) $(VPY) -m cyborg_nova.tests.bench; \
	else \
	    echo 'no benchmarks yet: cyborg_nova/tests/bench/__main__.py' \
	         'does not exist'; \
	fi

pep8: $(DEPS_STAMP)
	@echo '==> flake8 (hacking)'
	@$(VENV)/bin/flake8 && echo 'pep8: clean'

genconfig: venv
	@$(VENV)/bin/oslo-config-generator \
	    --config-file etc/cyborg-nova/cyborg-nova-config-generator.conf
	@echo '==> wrote etc/cyborg-nova/cyborg-nova.conf.sample'

docs: venv
	@$(PIP) install -q --disable-pip-version-check -c constraints.txt \
	    -r doc/requirements.txt
	@$(VENV)/bin/sphinx-build -q -W -b html doc/source doc/build/html
	@echo '==> doc/build/html/index.html'

clean:
	@rm -rf .stestr build dist doc/build .hypothesis AUTHORS ChangeLog \
	    *.egg-info .eggs
	@find . -path ./$(VENV) -prune -o -path ./.git -prune -o \
	    -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	@rm -rf $(VENV)
