# Two commands on a fresh machine:  `make demo` (offline demo build)  and  `make test` (the test suite).
# Both create ./.venv first when it is missing. Python >= 3.10 with venv is all they need.
PYTHON ?= python3
VENV ?= .venv
# CPU-only machines: pin torch so pip takes the CPU build instead of several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "$(TORCH_SPEC)"
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	touch $@

.PHONY: install demo test
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/python scripts/build.py --demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q
