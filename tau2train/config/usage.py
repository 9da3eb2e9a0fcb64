"""`python -m tau2train.run --help`, answered from the packaged conf/ folder and the key index
without composing anything (and so without AReaL): Hydra's help template of conf/config.yaml,
filled in as Hydra fills it. tests/test_key_index.py checks the text against Hydra's own.
"""

from __future__ import annotations

import importlib.resources
import string
from importlib.resources.abc import Traversable

from omegaconf import OmegaConf

from tau2train.config import key_index
from tau2train.config.overrides import CONFIG_MODULE, CONFIG_NAME, group_options

HELP_FLAGS = ("--help", "-h")
# the ConfigStore group each group YAML names its schema from (tau2train.config.registry)
SCHEMA_GROUP = "schema"


def help_text() -> str:
    conf = importlib.resources.files(CONFIG_MODULE)
    help_node = OmegaConf.load(str(conf / f"{CONFIG_NAME}.yaml")).hydra.help
    template = OmegaConf.create({"hydra": {"help": help_node}}).hydra.help.template
    return string.Template(template).substitute(APP_CONFIG_GROUPS=_config_groups(conf))


def _config_groups(conf: Traversable) -> str:
    """Hydra's `$APP_CONFIG_GROUPS`: each group with YAML choices, nested ones as a/b, and the
    schemas' group, one line each, sorted."""
    groups = {SCHEMA_GROUP: list(key_index.load().schema_groups)}

    def walk(folder: Traversable, name: str) -> None:
        if name and (options := group_options(name)):
            groups[name] = options
        for sub in folder.iterdir():
            if sub.is_dir() and sub.name != "__pycache__":
                walk(sub, f"{name}/{sub.name}" if name else sub.name)

    walk(conf, "")
    return "".join(f"{group}: {', '.join(sorted(options))}\n" for group, options in sorted(groups.items()))
