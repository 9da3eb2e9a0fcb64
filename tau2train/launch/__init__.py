"""Launching: run a composed experiment here (train, eval, dry run) or submit it to Slurm
(one array for a `-m` sweep), and print the plan. Imports configuration, rollout, records,
reports and schemas."""
