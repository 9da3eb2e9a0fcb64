"""tau2train's Slurm launcher for Hydra: hydra-submitit-launcher's, returning once the jobs are
submitted (launcher.py), and its config node (config.py). Hydra loads launcher plugins only
from the hydra_plugins namespace package."""
