"""python -m tau2train.user_sim: the same as tau2train-user-sim."""

from tau2train.user_sim.command import main

main()
