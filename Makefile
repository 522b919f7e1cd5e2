# Two entry points (see README): `make run` and `make test`. Both build .venv from scratch if needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test browser clean bench

$(BIN)/nclab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch is pinned explicitly: a bare `torch` would pull the newest CUDA build (several GB)
	$(BIN)/pip install "torch==2.13.0" -e ".[dev]"
	# nbgrader (dev: student builds) switches its Jupyter extensions on; keep JupyterLab as students see it
	$(BIN)/jupyter server extension disable --sys-prefix $(addprefix nbgrader.server_extensions.,formgrader validate_assignment assignment_list course_list)
	$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader
	touch $(BIN)/nclab

run: $(BIN)/nclab
	$(BIN)/nclab run --out results

test: $(BIN)/nclab browser
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q -m ui tests/ui

# Real-browser tests need Debian's Chromium; as root with apt-get it is installed here, otherwise the
# browser tests are skipped with the reason printed.
browser:
	@if [ -x /usr/bin/chromium ]; then echo "browser tests: using /usr/bin/chromium"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "could not install chromium: the browser tests will be skipped"; \
	else echo "chromium not found (sudo apt-get install chromium): the browser tests will be skipped"; fi

# Speed measurements (ratios against an in-process baseline + peak memory); never part of `make test`.
bench: $(BIN)/nclab
	@for f in benchmarks/bench_*.py; do echo "== $$f"; OMP_NUM_THREADS=1 $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) results
