"""The package's layers and the imports between them, checked rather than described.

Static: every `import tau2train.<layer>` in a module (lazy ones inside functions included)
goes to a layer that module's layer may use. At run time, in a fresh interpreter: the rollout
side (what AReaL's workers import) loads no Hydra launcher, no submitit and no launch code,
and the records load nothing beyond the standard library.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tau2train"
TESTS = Path(__file__).resolve().parent

# layer -> the layers it may import (itself included)
ALLOWED = {
    "compat": {"compat"},
    "schemas": {"schemas"},
    "records": {"records"},
    "config": {"config", "schemas", "records", "compat", "serving"},
    "rollout": {"rollout", "schemas", "records", "compat"},
    "reports": {"reports", "records"},
    "launch": {"launch", "config", "rollout", "reports", "records", "schemas", "user_sim", "compat", "serving"},
    "user_sim": {"user_sim", "config", "records", "schemas"},
    # the CPU inference server and AReaL's worker that starts it: runs inside AReaL's workers
    "serving": {"serving", "compat", "records", "schemas"},
    "run": {"launch", "config"},
}
# third-party packages a layer must not import at all
FORBIDDEN = {
    # the rollout side loads compat.tau2 and compat.areal: neither may load Hydra or submitit,
    # and none imports AReaL at module level (compat.areal reads what AReaL has loaded)
    "compat/tau2": ("hydra", "submitit", "areal"),
    "compat/areal": ("hydra", "submitit", "areal", "tau2"),
    "schemas": ("hydra", "hydra_plugins", "submitit", "tau2"),
    "records": ("hydra", "hydra_plugins", "submitit", "tau2", "areal", "omegaconf"),
    "rollout": ("hydra", "hydra_plugins", "submitit"),
    "config": ("submitit", "hydra_plugins.tau2train_slurm_launcher.launcher"),
    "reports": ("hydra", "hydra_plugins", "submitit", "areal"),
    "serving": ("hydra", "hydra_plugins", "submitit", "tau2"),
}


def layer_of(path: Path) -> str:
    """tau2train/<layer>/<module>.py, or tau2train/run.py (the entry point)."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imports_of(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tau2train":  # from tau2train import <layer>
                found += [(node.lineno, f"tau2train.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.name == "run.py")


def test_every_module_belongs_to_a_layer():
    top_level = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top_level == ["__init__.py", "run.py"], "modules belong in a layer's sub-package"
    assert {layer_of(p) for p in MODULES} == set(ALLOWED)


def violations(path: Path, layer: str) -> list[str]:
    """Imports of `path` its layer may not make (FORBIDDEN: by layer, and by layer/module)."""
    wrong = []
    own = f"{layer}/{path.stem}"
    for line, module in imports_of(path):
        if module.startswith("tau2train."):
            target = module.split(".")[1]
            if target not in ALLOWED[layer] and target != "conf":
                wrong.append(f"line {line}: {module} ({layer} may import {sorted(ALLOWED[layer])})")
        for scope in (layer, own):
            for banned in FORBIDDEN.get(scope, ()):
                if module == banned or module.startswith(banned + "."):
                    wrong.append(f"line {line}: {module} ({scope} never imports {banned})")
    return wrong


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    wrong = violations(path, layer_of(path))
    assert not wrong, f"{path.relative_to(PACKAGE)}:\n" + "\n".join(wrong)


def test_a_lazy_import_across_the_layers_is_caught(tmp_path):
    module = tmp_path / "workflow.py"
    module.write_text((PACKAGE / "rollout" / "workflow.py").read_text()
                      + "\n\ndef _f():\n    from tau2train.launch.clusters.slurm import submit\n    import submitit\n")
    wrong = violations(module, "rollout")
    assert len(wrong) == 2 and "tau2train.launch.clusters.slurm" in wrong[0] and "submitit" in wrong[1], wrong


def fresh_imports(modules: list[str]) -> list[str]:
    """The modules a fresh interpreter holds after importing `modules`, beyond its start-up."""
    code = (
        "import sys; before = set(sys.modules); "
        + "; ".join(f"import {m}" for m in modules)
        + "; print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def dotted(layer: str) -> list[str]:
    return [
        "tau2train." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in sorted((PACKAGE / layer).glob("*.py"))
        if p.name not in ("__init__.py", "__main__.py")
    ]


def test_the_rollout_side_loads_no_launcher_and_no_launch_code():
    loaded = fresh_imports(dotted("rollout"))
    assert "tau2train.rollout.workflow" in loaded  # the import did happen
    banned = (
        "submitit", "hydra_plugins", "hydra._internal.core_plugins", "tau2train.launch",
        "tau2train.config", "tau2train.user_sim", "tau2train.reports", "tau2train.run",
    )
    assert [m for m in loaded if m.startswith(banned)] == []


def test_records_load_only_the_standard_library():
    loaded = fresh_imports(dotted("records"))
    assert "tau2train.records.job" in loaded
    outside = sorted({m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"tau2train"})
    assert outside == []
    assert [m for m in loaded if m.startswith("tau2train.") and not m.startswith("tau2train.records")] == []


def third_party_imports(paths: list[Path]) -> list[str]:
    """The import statements outside tau2train that these modules run as they load (module
    level; `from X import name` as written, since a package's lazy attributes load on access)."""
    statements = set()
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                statements |= {f"import {a.name}" for a in node.names if not a.name.startswith("tau2train")}
            elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                  and not node.module.startswith(("tau2train", "__future__"))):
                statements |= {f"from {node.module} import {a.name}" for a in node.names}
    return sorted(statements)


def test_importing_tau2train_changes_nothing_by_itself():
    """Every tau2train module, imported once what it imports is loaded, leaves the patch points
    a run restores (helpers/process_state.py) as they were: patches happen in a run, never at
    import. (What AReaL's own modules do as they load, e.g. its logging-root swap, is theirs.)"""
    modules = [m for layer in ALLOWED if layer != "run" for m in dotted(layer)] + ["tau2train.run"]
    code = (
        "import json, sys\n"
        + "".join(f"{statement}\n" for statement in third_party_imports(MODULES))
        + "from helpers import process_state\n"
        "before = process_state.snapshot()\n"
        "loaded_before = sorted(sys.modules)\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(json.dumps({'changed': process_state.changed(before, process_state.snapshot()),\n"
        "                   'loaded_before': loaded_before, 'loaded_after': sorted(sys.modules)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # AReaL's trainer was loaded before the snapshot (its own import-time patches are not ours),
    # and the modules that patch in a run (the players, the trainer's launcher) were imported after it
    assert "areal.trainer" in seen["loaded_before"] and "tau2train.rollout.players" not in seen["loaded_before"]
    assert {"tau2train.rollout.players", "tau2train.launch.trainer", "tau2train.run"} <= set(seen["loaded_after"])
    assert seen["changed"] == [], seen["changed"]
