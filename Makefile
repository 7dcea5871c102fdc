# Every target creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test test-fast bench lint clean lambda-zip constraints image

# The image's pins (containers/constraints.txt) hold here too: the tests run with the versions
# the image installs, and a release upstream does not change them between two runs.
$(STAMP): pyproject.toml containers/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' --constraint containers/constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/option-pricing
	$(VENV)/bin/tessera validate examples/option-pricing.toml
	$(VENV)/bin/tessera run examples/option-pricing.toml

test: $(STAMP) ensure-chromium ensure-vips ensure-docker vendor-openseadragon
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

bench: $(STAMP) ensure-vips
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/montecarlo.py
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/suite.py

# Debian's libvips-tools for the `vips dzsave` baseline, installed only when apt-get exists.
.PHONY: ensure-vips
ensure-vips:
	@if command -v vips >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  .ci/apt-install libvips-tools \
	  || echo "warning: could not install libvips-tools; the vips baseline will be skipped"; \
	else echo "libvips-tools not installed: the vips baseline will be skipped"; fi

# Debian's docker.io (a Docker engine the tests start themselves, tests/docker_engine.py) and
# debootstrap (the stand-in base image), installed only when apt-get exists and we are root.
.PHONY: ensure-docker
ensure-docker:
	@if command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  .ci/apt-install docker.io debootstrap \
	  || echo "warning: could not install docker.io; the container tests will be skipped"; \
	else echo "docker.io not installed: the container tests will be skipped"; fi

# The image's exact versions, from this environment (what the tests run with).
constraints: $(STAMP)
	$(PY) containers/constraints.py
	$(PY) containers/constraints.py --gpu

# The worker image, into the engine DOCKER_HOST names (the real base, or load the stand-in
# first: `python -m tests.docker_engine standin`).
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' tessera/_version.py)
image:
	docker build -f containers/Dockerfile -t tessera:$(VERSION) .

# The S3 trigger's Lambda deployment zip (tessera's code and boto3, nothing compiled).
lambda-zip: $(STAMP)
	$(PY) containers/lambda/build_zip.py --out build/tessera-lambda.zip

lint: $(STAMP)
	$(VENV)/bin/ruff check engine kernels tessera tests benchmarks examples
	$(VENV)/bin/ruff format --check engine kernels tessera tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) runs build *.egg-info

# --- viewer test prerequisites (neither ever fails the build: without them the test is skipped)
.PHONY: ensure-chromium vendor-openseadragon
OSD_VERSION ?= 6.1.1
OSD_DIR     := .cache/openseadragon

# Debian's chromium for the headless viewer test, installed only when apt-get exists.
ensure-chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  .ci/apt-install chromium \
	  || echo "warning: could not install chromium; the viewer test will be skipped"; \
	else echo "apt-get not found: chromium not installed; the viewer test will be skipped"; fi

vendor-openseadragon: $(OSD_DIR)/openseadragon.min.js

# OpenSeadragon (BSD-3-Clause) for offline viewers: unpacked from the npm package into a
# gitignored folder, never committed; engine/viewer.py copies it beside DZI output.
$(OSD_DIR)/openseadragon.min.js:
	@if ! command -v npm >/dev/null 2>&1; then \
	  echo "npm not found: viewers load OpenSeadragon from its CDN; the viewer test will be skipped"; \
	else \
	  rm -rf $(OSD_DIR).tmp && mkdir -p $(OSD_DIR).tmp && \
	  (cd $(OSD_DIR).tmp && npm pack --silent openseadragon@$(OSD_VERSION) >/dev/null) && \
	  tar -xzf $(OSD_DIR).tmp/openseadragon-$(OSD_VERSION).tgz -C $(OSD_DIR).tmp && \
	  rm -rf $(OSD_DIR) && mkdir -p $(OSD_DIR) && \
	  cp -R $(OSD_DIR).tmp/package/build/openseadragon/openseadragon.min.js \
	    $(OSD_DIR).tmp/package/build/openseadragon/images \
	    $(OSD_DIR).tmp/package/LICENSE.txt $(OSD_DIR)/ && \
	  echo "OpenSeadragon $(OSD_VERSION) in $(OSD_DIR)" \
	  || echo "warning: could not fetch openseadragon from npm; the viewer test will be skipped"; \
	  rm -rf $(OSD_DIR).tmp; \
	fi
