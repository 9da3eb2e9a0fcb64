"""Typed schemas for everything tau2train composes: the bottom layer, imported by every other.

The root config a user composes is `ExperimentConfig`: AReaL's own `PPOConfig` (so the
trainer gets exactly what it accepts) plus the τ² environment (`econfig`) and the facts of the
chosen config groups. `RunInfo` is one episode's record. These modules import only the
standard library, OmegaConf's MISSING and AReaL's config dataclasses; Hydra's ConfigStore
registration lives with the configuration layer (tau2train.config.registry).

The names below load with their module on first use (PEP 562): `tau2train.schemas.declare`
imports no AReaL, so the command line's checks that run before AReaL is loaded
(tau2train.config.key_index) can use it without loading the rest.
"""

import ast
from importlib import import_module
from pathlib import Path


def _defined_names() -> dict[str, str]:
    """Exported name -> the module of this package that defines it: every public name a module
    defines at its top level (class, function, assignment), read from the source without
    importing it (a few milliseconds), so the table never lags behind the modules."""
    home: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                targets = [node.name]
            elif isinstance(node, ast.Assign):
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                targets = [node.target.id]
            else:
                continue
            for name in targets:
                if not name.startswith("_"):
                    assert home.setdefault(name, path.stem) == path.stem, f"{name} is defined twice"
    return home


_HOME = _defined_names()
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
