# Set-up is part of every target: a fresh machine needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS ?= serve,train,export,loadtest,dev,deploy

.PHONY: setup test serve loadtest lint repo clean browser redis gpu-pack

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch pinned to the local CPU build; never an unpinned torch (several GB of CUDA wheels).
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

# Chromium + its driver for tests/integration/test_web_page.py (the web page in a real browser):
# installed with apt where there is none and we are root; never fails the build (the test skips).
browser:
	@command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver (apt) for tests/integration/test_web_page.py"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends chromium chromium-driver; } \
	      || echo "note: could not install chromium; tests/integration/test_web_page.py will skip"; \
	  else \
	    echo "note: no chromedriver (needs root and apt-get to install it); test_web_page.py will skip"; \
	  fi; \
	} || true

# redis-server for the Redis job store's tests (tests/unit/test_job_store.py,
# tests/integration/test_jobs_redis.py): the same way, apt where missing and root; they skip without it.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (apt) for the Redis job store's tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends redis-server; } \
	      || echo "note: could not install redis-server; the Redis job-store tests will skip"; \
	  else \
	    echo "note: no redis-server (needs root and apt-get to install it); the Redis job-store tests will skip"; \
	  fi; \
	} || true

test: $(STAMP) browser redis
	$(PY) -m ruff check .
	$(PY) -m pytest -q

serve: $(STAMP)
	$(VENV)/bin/imdsr serve

# Locust against Triton + gateway started on free loopback ports (or URL=http://127.0.0.1:8080, a
# running one); reports in loadtest/results/<UTC time>/. SHAPE=constant|step, SCENARIOS=small,c4 ...
URL       =
USERS     ?= 4
DURATION  ?= 60s
SHAPE     ?= constant
SCENARIOS ?=

loadtest: $(STAMP)
	$(PY) loadtest/run.py --users $(USERS) --duration $(DURATION) --shape $(SHAPE)$(if $(URL), --url '$(URL)')$(if $(SCENARIOS), --scenarios '$(SCENARIOS)')

# The committed cpu model repository, from the shipped weights and export/serving.toml.
# Deterministic: an up-to-date repository comes out byte-identical (tests/unit/test_export_committed_repo.py).
repo: $(STAMP)
	$(VENV)/bin/imdsr export repo --target cpu --variants shipped -o model_repository
	$(VENV)/bin/imdsr export check-repo model_repository

# .whl/ for the GPU check on a lent GPU machine (bench/gpu_wheels.txt; docs/PERFORMANCE.md "GPU check")
gpu-pack: $(STAMP)
	$(PY) bench/gpu_pack.py

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
