"""Entry point: `python -m tau2train.run [-m] [group=choice ...] [key=value ...]`.

`--help` and typos (a group choice, a key or a declared value that does not exist) are
answered first, in about a second (tau2train.config.early); only then is AReaL, about 20 s
to import, loaded to compose, validate and launch (tau2train.launch.command). Every sweep
point is composed and validated before anything is written, started or submitted; bad input
exits with status 2 and one message. Hydra's own verbs (--cfg job, --info defaults, ...) go
straight to Hydra.
"""

from __future__ import annotations

import sys

from tau2train.config.early import answered_early
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.overrides import normalised
from tau2train.launch.process_state import left_as_found


def main(argv: list[str] | None = None) -> None:
    """The command line's job; callable in a running process too (the tests call it): the
    process is left as found (tau2train.launch.process_state), bad input still ends in
    SystemExit(2)."""
    argv = normalised(list(sys.argv[1:] if argv is None else argv))
    try:
        if answered_early(argv):
            return
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(BAD_INPUT_EXIT_CODE)
    with left_as_found():  # AReaL's modules swap logging's root as they load: undone too
        from tau2train.launch.command import execute  # AReaL and the launchers: imported only now

        execute(argv)


if __name__ == "__main__":
    main()
