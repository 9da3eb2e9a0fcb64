# The two commands a new user needs; each sets up .venv by itself (again only when
# pyproject.toml or requirements.lock changes).
#   make run           the whole recipe in miniature on this machine's CPU (experiment=cpu_miniature)
#   make run ARGS="experiment=cpu_miniature dry_run=true"               its plan, nothing run
#   make run ARGS="dry_run=true econfig.user_llm_base_url=http://host:8000/v1/"   a GPU run's plan
#   make test          (the whole suite; make test-quick: no Slurm job, no AReaL start-up)
#   make gpu-check     on a GPU node: is it ready? (ARGS=--dry-run: what it runs; docs/gpu-cluster.md)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export LITELLM_LOCAL_MODEL_COST_MAP := True
UV = $(PYTHON) -m uv
# install into the environment, with the overrides both locks were resolved with
INSTALL = $(UV) pip install --quiet --python $(VENV)/bin/python
# Python's default, which some sandboxes and CI images turn off (PYTHONDONTWRITEBYTECODE=1):
# keep each module's compiled bytecode (__pycache__/). Without it every process compiles
# AReaL, torch and transformers from source again, about 10 s more per process importing AReaL.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-quick bench install install-gpu lock slurm cluster gpu-check

# SGLang's Python package alone, without its GPU dependencies: AReaL's tool-call parser and
# SGLangConfig.build_args import it; the CPU tests serve the policy with tests/helpers/cpu_sglang.py.
# The version GPU nodes run (requirements-gpu.lock; areal[sglang]==1.0.4 pins it).
CPU_SGLANG := $(shell grep '^sglang==' requirements-gpu.lock)

install: $(STAMP)

# requirements.lock pins every dependency (AReaL's CUDA torch included) for Linux x86_64, each
# shared package at the version GPU nodes run (requirements-gpu.lock).
$(STAMP): pyproject.toml requirements.lock requirements-gpu.lock Makefile requirements-gpu.overrides
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(INSTALL) -r requirements.lock --override requirements-gpu.overrides
	$(INSTALL) --no-deps -e '.[test]'
	$(INSTALL) --no-deps $(CPU_SGLANG)
	touch $(STAMP)

# GPU nodes: the full set, SGLang and its CUDA kernels included (~13 GB), into $(VENV) (or
# VENV=/shared/venvs/tau2train: the environment the Slurm jobs run). No test tools.
GPU_STAMP := $(VENV)/.installed-gpu-stamp
install-gpu: $(GPU_STAMP)
$(GPU_STAMP): pyproject.toml requirements-gpu.lock Makefile requirements-gpu.overrides
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(INSTALL) -r requirements-gpu.lock --override requirements-gpu.overrides
	$(INSTALL) --no-deps -e .
	touch $(GPU_STAMP)

# Re-pin after changing dependencies in pyproject.toml or requirements-gpu.overrides: first the
# GPU nodes' set (areal[sglang] resolves only with the overrides; their reasons are in the file),
# then the CPU set held to the same version of every package the two share (-c). Existing pins
# are kept where they still fit (uv prefers the output file's versions).
# tests/test_locks.py checks that both are what this target makes, and that the GPU set installs.
LOCK = $(UV) pip compile pyproject.toml --override requirements-gpu.overrides \
	--prerelease=if-necessary-or-explicit --python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header -q
lock:
	$(LOCK) --extra gpu -o requirements-gpu.lock
	$(LOCK) --extra test -c requirements-gpu.lock -o requirements.lock

# a GPU node's environment (make install-gpu) when there is one, else the CPU set
RUN_STAMP = $(if $(wildcard $(GPU_STAMP)),$(GPU_STAMP),$(STAMP))
# no ARGS: the miniature recipe (experiment=cpu_miniature), which needs no GPU, model or server
RUN_ARGS = $(if $(strip $(ARGS)),$(ARGS),experiment=cpu_miniature)
run: $(RUN_STAMP)
	$(VENV)/bin/python -m tau2train.run $(RUN_ARGS)

# On a GPU node (docs/gpu-cluster.md): the GPUs and the driver against the pinned torch, SGLang
# serving a tiny Qwen3 built here, one AReaL step through tau2train's command line; one line per
# stage, exit 1 on the first failure (and at once where there is no GPU).
# make gpu-check ARGS=--dry-run: the stages and their exact commands, on any machine.
gpu-check: $(RUN_STAMP)
	$(VENV)/bin/python -m tau2train.launch.gpu_check $(ARGS)

# Both cores (pytest-xdist; tests/conftest.py keeps a module on one worker and AReaL's runs, the
# tests/test_areal_*.py modules, first and on one worker, then the rest in order); WORKERS=0 runs
# in one process.
# --durations=25: the slowest tests in every CI log.
WORKERS ?= 2
XDIST = $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadscope --no-loadscope-reorder)
test: $(STAMP) slurm cluster
	WANDB_MODE=offline $(VENV)/bin/python -m pytest $(XDIST) --durations=25 $(PYTEST_ARGS)

# The inner loop (a few minutes): every test that submits no Slurm job and starts no AReaL.
test-quick: $(STAMP)
	WANDB_MODE=offline $(VENV)/bin/python -m pytest $(XDIST) -m "not slurm and not areal" --durations=10 $(PYTEST_ARGS)

# The Slurm tests need a Slurm: unless one answers, start a one-node Slurm on this machine
# (installs Debian's slurmctld/slurmd/munge when missing; needs root, or sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
slurm:
	@sinfo -h >/dev/null 2>&1 || $(SUDO) bash tests/setup_slurm.sh

# The multi-host tests (marker multihost) need the test cluster: 3 hosts on this machine
# (network namespaces on a private bridge), a second Slurm over them beside the one above
# (tests/setup_cluster.sh; ~1.3 s, ~35 MB). Idempotent: a cluster already up is kept. It stays
# up after the tests, like the one-node Slurm: `sudo bash tests/setup_cluster.sh stop` removes it.
# (Without it, pytest's `multihost` fixture starts one for the session and stops it at the end.)
cluster: slurm
	@$(SUDO) bash tests/setup_cluster.sh start

# All benchmarks (~16 min on 2 cores, plus sweep_submit and areal_sft); one alone: make bench BENCH=rollout
BENCH ?= startup env_overhead rollout areal_tau2 areal_sft sweep_submit
bench: $(STAMP) slurm
	@for b in $(BENCH); do echo "== benchmarks/$$b.py"; $(VENV)/bin/python benchmarks/$$b.py || exit 1; done
