"""The user simulator's SGLang server: start it here or as a Slurm job, wait for it to answer,
record its URL (tau2train-user-sim / python -m tau2train.user_sim)."""
