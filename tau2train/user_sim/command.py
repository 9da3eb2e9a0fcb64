"""`tau2train-user-sim [group=choice ...] [key=value ...]` (= `python -m tau2train.user_sim`): start the τ²
user-simulator's SGLang server and record where it answers.

The experiment config is composed exactly as `python -m tau2train.run` composes it (same
groups, same overrides, same error messages, exit status 2 on bad input), so the record
lands where the training and eval jobs of that config look for it:
`user_sim.record_file` (under `cluster.fileroot`), from which they take
`econfig.user_llm_base_url`.

- `cluster=local`: the server runs as a child process; this command stays in the
  foreground and, on Ctrl-C or SIGTERM, stops it and removes the record.
- `cluster=slurm`: the server is submitted as a Slurm job through submitit; this command
  returns once the server is healthy and recorded (`scancel <job id>` stops it, and the
  job then removes the record itself).
- `dry_run=true`: prints the server command and job settings; starts nothing.
"""

from __future__ import annotations

import sys

from tau2train.config.early import check_early
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.overrides import normalised
from tau2train.config.usage import HELP_FLAGS

USAGE = "usage: tau2train-user-sim (or python -m tau2train.user_sim) [user_sim=<choice>] [cluster=local|slurm] [key=value ...]"


def main(argv: list[str] | None = None) -> None:
    """--help and typos answered before AReaL is imported (tau2train.config.early), then the
    server (tau2train.user_sim.serve)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_FLAGS for a in argv):
        print(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1])
        return
    try:
        check_early(normalised(argv))
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    from tau2train.user_sim.serve import serve  # AReaL and the launchers: imported only now

    serve(argv)


if __name__ == "__main__":
    main()
