# The two set-up commands of the README are `make demo` and `make test`; both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test ci-demo clean

# torch==2.13.0 is installed first: it is the CPU build on local disk. Installing anything that
# depends on torch before it would make pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	# The BTSbot 2 parity tests run the authors' code: btsbot 2.0.7 and timm, without their
	# dependencies (timm's would pull torchvision, which does not load beside this torch build;
	# the tests give timm a stand-in for it). brightscan itself needs neither.
	$(BIN)/python -m pip install -q --no-deps btsbot==2.0.7 timm==1.0.31
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/brightscan demo --size small --out demo-out

test: $(STAMP)
	$(BIN)/python -m pytest

# CI: the demo at a tiny size, then a check that its report exists and its metrics are in range.
ci-demo: $(STAMP)
	$(BIN)/brightscan demo --size tiny --out ci-demo-out
	$(BIN)/python -m tests.demo.check ci-demo-out

clean:
	rm -rf $(VENV) demo-out ci-demo-out
