# medtrans: `make all` runs the demo study, `make test` runs the tests. Both set up first.
SHELL := /bin/bash
# The container path (a Docker engine answers) needs on the host only make, git, Docker with
# compose v2 (or the compose binary `make wheelhouse` fetches) and HOST_PYTHON, any python3 >= 3.9
# (standard library only). No .venv: what needs the images' Python runs in docker/builder.
HOST_PYTHON ?= python3
# The local path (.venv): PYTHON=... or the first supported one docker/scripts/local-python.sh finds
PYTHON ?=
VENV := .venv
BIN := $(VENV)/bin
STUDY ?= studies/demo.yaml
# units at once (`medtrans run --jobs`, compose-run.sh): unset = one after the other (the study's
# resources.jobs where it sets one); each unit gets its stage's resources threads either way
JOBS ?=
# containers (docker/, compose.yaml): VARIANT=cpu|cuda, images tagged <version>-<variant>.
# GPU=auto (default): cuda where nvidia-smi sees a GPU and Docker has the NVIDIA runtime (a GPU
# without it is an error naming the toolkit); GPU=0 forces cpu, GPU=1 cuda (docker/scripts/gpu.sh).
GPU ?= auto
CONTAINER_GOALS := compose-run images wheelhouse archive restore weights weights-verify
ifeq ($(origin VARIANT),undefined)
ifneq ($(filter $(CONTAINER_GOALS),$(MAKECMDGOALS)),)
VARIANT := $(shell GPU=$(GPU) docker/scripts/gpu.sh)
ifeq ($(VARIANT),)
$(error GPU=$(GPU): no image variant (the line above says why))
endif
else
VARIANT := cpu# `make all` decides in its recipe, only when a Docker engine answers
endif
endif
WHEELHOUSE ?= wheelhouse$(if $(filter cuda,$(VARIANT)),-cuda)
WEIGHTS ?= weights
ARCHIVE ?= archive/medtrans-$(VARIANT)
WITH_WEIGHTS ?= 0
# the list of stages, translators and images: shared/catalogue/stages.py (any python3 >= 3.9)
CATALOGUE = $(HOST_PYTHON) shared/catalogue/stages.py
STAGE_IMAGES = $(shell $(CATALOGUE) images)
TAG = $(shell $(HOST_PYTHON) docker/scripts/requirements.py --version)-$(VARIANT)
DOCKER_ANSWERS = timeout 20 docker info >/dev/null 2>&1
RUN ?=
STAMP := $(VENV)/.setup-stamp
# medtrans itself is then installed again in setuptools' strict editable mode (LINKED): a tree of
# links to the checkout's files under build/__editable__.*, which jedi, pyright and mypy follow
# (the default mode's import hook they cannot). Only this install gets the setting: pip would pass
# it to every source build of the full install too. The tree lists the files present when it was
# made, so when the list of files under shared/ and stages/ changes (MODULES), `make setup` links
# them again (seconds, offline).
EDITABLE := --config-settings editable_mode=strict
MODULES := $(VENV)/.modules
LINKED := $(VENV)/.linked-stamp
MODULE_LIST = $(shell find shared stages -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort)

.PHONY: setup all local test test-gpu bench bench-gpu lint clean wheelhouse images weights weights-verify archive restore compose-run docker-e2e generate compose constraints FORCE

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || { py=$$(PYTHON="$(PYTHON)" docker/scripts/local-python.sh) && echo "$$py -m venv $(VENV)" && $$py -m venv $(VENV); }
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# CPU torch 2.13.0 first (from the local wheel folder where there is one), then the rest
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@

# rewritten only when the list differs, so that its time stamp says when the list last changed
$(MODULES): FORCE
	@mkdir -p $(@D)
	@printf '%s\n' $(MODULE_LIST) > $@.tmp
	@if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

$(LINKED): $(STAMP) $(MODULES)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e . $(EDITABLE)
	touch $@

setup: $(LINKED) ## create .venv and install the pinned dependencies (medtrans itself as a strict editable install)

generate: ## compose.yaml and docker/stage/Dockerfile's targets, from shared/catalogue/stages.py
	$(HOST_PYTHON) docker/scripts/generate.py write

compose: generate ## the same as make generate

all: ## run STUDY (default studies/demo.yaml): through compose when a Docker engine answers, else locally
	@if [ "$${MEDTRANS_LOCAL:-0}" != 1 ] && $(DOCKER_ANSWERS); then \
		echo "make all: a Docker engine answers -> one container per stage (compose; no .venv needed)"; \
		variant=$$(GPU=$(GPU) docker/scripts/gpu.sh) || exit 2; \
		$(MAKE) --no-print-directory compose-run VARIANT=$$variant; \
	else \
		echo "make all: no Docker engine answers (or MEDTRANS_LOCAL=1) -> the local runner in .venv"; \
		$(MAKE) --no-print-directory local; \
	fi

local: setup ## run STUDY with the local runner (no containers)
	$(BIN)/medtrans run $(STUDY) $(if $(RUN),--run $(RUN)) $(if $(JOBS),--jobs $(JOBS))

# ---- containers (no .venv: HOST_PYTHON runs only standard-library scripts) --------------------
# Made once, and a restored archive's wheelhouse is used as it is (no time-stamp rule: a fresh
# clone's files are newer); after a pin changes, `make -B wheelhouse` makes it again.
$(WHEELHOUSE)/SHA256SUMS:
	TORCH_VARIANT=$(VARIANT) HOST_PYTHON=$(HOST_PYTHON) docker/scripts/wheelhouse.sh $(WHEELHOUSE)

wheelhouse: $(WHEELHOUSE)/SHA256SUMS ## every pinned wheel and the compose binary, once (.venv's pip, else docker/builder)

images: wheelhouse ## build the base and one image per stage (GPU=auto|0|1, BASE_IMAGE=<image>|debootstrap, WITH_WEIGHTS=1)
	VARIANT=$(VARIANT) WHEELHOUSE=$(WHEELHOUSE) WEIGHTS=$(WEIGHTS) WITH_WEIGHTS=$(WITH_WEIGHTS) \
		HOST_PYTHON=$(HOST_PYTHON) docker/scripts/build.sh

weights: ## fetch the FID Inception, SPADE VGG19 and TotalSegmentator weights (needs internet), checked against the locks
	BIN=$(BIN) MEDTRANS_TAG=$(TAG) docker/scripts/weights.sh fetch $(WEIGHTS)

weights-verify: ## check the weights folder against the sha256 locks, offline
	BIN=$(BIN) MEDTRANS_TAG=$(TAG) docker/scripts/weights.sh verify $(WEIGHTS)

constraints: setup ## docker/constraints.txt (the builder's pip constraints) from .venv's pip freeze
	@{ sed -n '1,2p' docker/constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(medtrans|-e )' | LC_ALL=C sort -f; } > docker/constraints.txt.tmp
	mv docker/constraints.txt.tmp docker/constraints.txt

# make all through compose: build what is missing (wheelhouse, images), fetch the weights when the
# internet answers (otherwise FID/KID/IS are reported unavailable), then one container per stage.
compose-run:
	@tag=$(TAG); digest=$$(docker/scripts/source-digest.sh); stale=""; \
	for s in $(STAGE_IMAGES); do \
		have=$$(docker image inspect -f '{{index .Config.Labels "org.medtrans.source-digest"}}' medtrans/$$s:$$tag 2>/dev/null || true); \
		[ "$$have" = "$$digest" ] || stale="$$stale $$s"; \
	done; \
	if [ -n "$$stale" ]; then echo "make all: images missing or built from other code:$$stale -> make images"; $(MAKE) --no-print-directory images VARIANT=$(VARIANT) || exit 1; \
	else echo "make all: images medtrans/*:$$tag are built from this code (source digest $${digest:0:12})"; fi
	@if BIN=$(BIN) MEDTRANS_TAG=$(TAG) docker/scripts/weights.sh verify $(WEIGHTS) >/dev/null 2>&1; then echo "make all: weights verified ($(WEIGHTS)/)"; \
	elif timeout 10 $(HOST_PYTHON) -c "import urllib.request; urllib.request.urlopen('https://github.com', timeout=8)" >/dev/null 2>&1; then \
		echo "make all: weights missing, the internet answers -> make weights"; $(MAKE) --no-print-directory weights VARIANT=$(VARIANT) || echo "make all: make weights failed; going on without (FID/KID/IS unavailable)"; \
	else echo "make all: weights missing and no internet: going on; FID/KID/IS will be reported unavailable (run \`make weights\` on a machine with internet, or make restore)"; fi
	MEDTRANS_DATA=$${MEDTRANS_DATA:-data} MEDTRANS_WEIGHTS_DIR=$(WEIGHTS) HOST_PYTHON=$(HOST_PYTHON) \
		WHEELHOUSE=$(WHEELHOUSE) JOBS=$(JOBS) $(if $(RUN),EXPORT=$(RUN)) docker/scripts/compose-run.sh $(STUDY) $(if $(filter cuda,$(VARIANT)),--gpu)

archive: ## one folder to copy: docker save of every image, wheelhouse (with the compose binary), weights, studies, checksums
	TAG=$(TAG) WHEELHOUSE=$(WHEELHOUSE) WEIGHTS=$(WEIGHTS) HOST_PYTHON=$(HOST_PYTHON) docker/scripts/archive.sh $(ARCHIVE)

restore: ## load an archive (ARCHIVE=DIR): checksums, images (ids checked), wheelhouse, weights
	WHEELHOUSE=$(WHEELHOUSE) WEIGHTS=$(WEIGHTS) docker/scripts/restore.sh $(ARCHIVE)

docker-e2e: setup ## the real-engine end-to-end test alone (also part of make test)
	$(BIN)/python -m pytest -q tests/test_containers_e2e.py

test: setup ## run the tests
	$(BIN)/python -m pytest -q

test-gpu: setup ## the CUDA paths (needs a GPU): translators, UNet, metrics on CUDA, with timings printed
	$(BIN)/python -m pytest -s -q tests/test_cuda.py tests/test_swd.py -k cuda

bench: setup ## speed and memory against the tools people would use instead
	PYTHONPATH=tests $(BIN)/python -m bench --out bench-results/bench.json

bench-gpu: setup ## each translator's and the UNet's training step, today's and each optimisation (paper settings on CUDA, tiny on a CPU)
	PYTHONPATH=tests $(BIN)/python -m bench.gpu --out bench-results/gpu-bench.json

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf runs bench-results .pytest_cache .ruff_cache build/docker/runs  # keeps wheelhouse/ and weights/
