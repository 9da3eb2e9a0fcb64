"""What the command line answers before AReaL is imported (about 20 s): `--help`, a group
choice conf/ lacks, a key the schemas lack, and a value outside its key's declared choices or
range. Each is answered as composition would answer it, in about a second; everything else
(and everything again) is checked once the experiment is composed.
"""

from __future__ import annotations

from hydra.core.override_parser.types import Override

from tau2train.config import key_index
from tau2train.config.overrides import (
    MULTIRUN_FLAGS,
    check_group_choices,
    check_moved_keys,
    hydras_own,
    parse_overrides,
)
from tau2train.config.usage import HELP_FLAGS, help_text


def answered_early(argv: list[str]) -> bool:
    """True when `argv` asked for help and it was printed; a ConfigError for a typo; False when
    the rest is composition's (Hydra's other flags, or a run)."""
    if any(a.startswith("-") and a not in MULTIRUN_FLAGS + HELP_FLAGS for a in argv):
        return False  # --cfg, --info, --hydra-help, ...: Hydra answers them from a composed config
    overrides = check_early(argv)
    if any(a in HELP_FLAGS for a in argv) and not any(hydras_own(o) for o in overrides):
        print(help_text())
        return True
    return False


def check_early(argv: list[str]) -> list[Override]:
    """`argv`'s overrides (the flags -m and --help aside), parsed; a ConfigError for the first
    typo among them."""
    overrides = parse_overrides([a for a in argv if a not in MULTIRUN_FLAGS + HELP_FLAGS])
    check_group_choices(overrides)
    check_moved_keys(overrides)
    key_index.check(overrides)
    return overrides
