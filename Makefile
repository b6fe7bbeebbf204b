# `make demo` runs the main job; `make test` runs the test suite; `make test-avx2` runs the
# tests of compiled CPU kernels again as a machine without AVX-512 would.
# Each target creates .venv when it is missing and installs posemb into it.
# torch: a torch already importable by python3 is reused (the venv sees system packages);
# otherwise TORCH_SPEC is installed (torch==2.13.0, the CPU wheel on these machines).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.posemb-installed

.PHONY: demo test test-avx2 lint install clean bench

$(STAMP): pyproject.toml
	@if [ ! -x "$(PY)" ]; then \
	  if $(PYTHON) -c "import torch" >/dev/null 2>&1; then \
	    echo "Creating $(VENV) (reusing the torch already installed for $(PYTHON))"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else \
	    $(PYTHON) -m venv $(VENV); \
	  fi; \
	fi
	@$(PY) -c "import torch" >/dev/null 2>&1 || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/posemb demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest

# Inductor's kernel cache is keyed without the instruction set: this run gets its own cache,
# or it would hand its AVX2 kernels to later runs. Exit 5 (no test marked compiled) fails.
test-avx2: $(STAMP)
	@cache=$$(mktemp -d); \
	ATEN_CPU_CAPABILITY=avx2 TORCHINDUCTOR_CACHE_DIR=$$cache $(PY) -m pytest -m compiled; \
	rc=$$?; rm -rf $$cache; \
	if [ $$rc -eq 5 ]; then echo "no test is marked compiled" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/bench_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
