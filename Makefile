# The two commands a new user needs; each sets up .venv by itself (again only when
# pyproject.toml or requirements.lock changes).
#   make run ARGS="dry_run=true econfig.user_llm_base_url=http://host:8000/v1/"
#   make test          (the whole suite; make test-quick: no Slurm job, no AReaL start-up)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export LITELLM_LOCAL_MODEL_COST_MAP := True
# Python's default, which some sandboxes and CI images turn off (PYTHONDONTWRITEBYTECODE=1):
# keep each module's compiled bytecode (__pycache__/). Without it every process compiles
# AReaL, torch and transformers from source again, about 10 s more per process importing AReaL.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test test-quick bench install lock slurm

# SGLang's Python package alone, without its GPU dependencies: AReaL's tool-call parser and
# SGLangConfig.build_args import it; the CPU tests serve the policy with tests/helpers/cpu_sglang.py.
# The version areal[sglang]==1.0.4 pins (GPU nodes: pip install -e '.[gpu]').
CPU_SGLANG := sglang==0.5.10.post1

install: $(STAMP)

# requirements.lock pins every dependency (AReaL's CUDA torch included) for Linux x86_64.
$(STAMP): pyproject.toml requirements.lock Makefile
	@$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(PYTHON) -m uv venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(PYTHON) -m uv pip install --quiet --python $(VENV)/bin/python -r requirements.lock
	$(PYTHON) -m uv pip install --quiet --python $(VENV)/bin/python --no-deps -e '.[test]'
	$(PYTHON) -m uv pip install --quiet --python $(VENV)/bin/python --no-deps $(CPU_SGLANG)
	touch $(STAMP)

# Re-pin after changing dependencies in pyproject.toml.
lock:
	$(PYTHON) -m uv pip compile pyproject.toml --extra test --prerelease=if-necessary-or-explicit \
		--python-version 3.11 --python-platform x86_64-unknown-linux-gnu --no-header -q -o requirements.lock

run: $(STAMP)
	$(VENV)/bin/python -m tau2train.run $(ARGS)

# Both cores (pytest-xdist; tests/conftest.py keeps a module on one worker and AReaL's runs, the
# tests/test_areal_*.py modules, first and on one worker, then the rest in order); WORKERS=0 runs
# in one process.
# --durations=25: the slowest tests in every CI log.
WORKERS ?= 2
XDIST = $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadscope --no-loadscope-reorder)
test: $(STAMP) slurm
	WANDB_MODE=offline $(VENV)/bin/python -m pytest $(XDIST) --durations=25 $(PYTEST_ARGS)

# The inner loop (a few minutes): every test that submits no Slurm job and starts no AReaL.
test-quick: $(STAMP)
	WANDB_MODE=offline $(VENV)/bin/python -m pytest $(XDIST) -m "not slurm and not areal" --durations=10 $(PYTEST_ARGS)

# The Slurm tests need a Slurm: unless one answers, start a one-node Slurm on this machine
# (installs Debian's slurmctld/slurmd/munge when missing; needs root, or sudo).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
slurm:
	@sinfo -h >/dev/null 2>&1 || $(SUDO) bash tests/setup_slurm.sh

# All benchmarks (~16 min on 2 cores, plus sweep_submit and areal_sft); one alone: make bench BENCH=rollout
BENCH ?= startup env_overhead rollout areal_data areal_sft sweep_submit
bench: $(STAMP) slurm
	@for b in $(BENCH); do echo "== benchmarks/$$b.py"; $(VENV)/bin/python benchmarks/$$b.py || exit 1; done
