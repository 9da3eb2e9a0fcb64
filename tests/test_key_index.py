"""Typos and --help are answered before AReaL is imported (tau2train.config.early), from an
index of the schemas' keys (config/keys.json) and the packaged conf/: checked here to be
current, to answer exactly what composition answers, and to leave alone what it cannot judge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import USER_SIM, Result, in_process

from tau2train.config.early import answered_early
from tau2train.config.errors import BAD_INPUT_EXIT_CODE, ConfigError
from tau2train.config.key_index import INDEX_FILE
from tau2train.config.overrides import normalised
from tau2train.config.reference import INDEX_PATH, key_index

ROOT = Path(__file__).resolve().parents[1]


def test_the_index_file_is_what_the_schemas_give():
    assert INDEX_PATH.endswith(INDEX_FILE)
    assert (ROOT / INDEX_PATH).read_text() == key_index(), (
        f"{INDEX_PATH} is out of date: run `tau2train-config-reference --write-index {INDEX_PATH}`"
    )


def composed(*argv: str, cwd: Path) -> Result:
    """What the command answers once AReaL is loaded and the experiment composed and
    validated (the early checks skipped)."""
    from tau2train.launch.command import execute
    from tau2train.launch.process_state import left_as_found

    def main(args: list[str]) -> None:
        with left_as_found():
            execute(normalised(args))

    return in_process(*argv, cwd=cwd, main=main)


def early(*argv: str, cwd: Path) -> Result:
    return in_process(*argv, cwd=cwd)


VALID = ["dry_run=true", USER_SIM]
# Each answered early exactly as composition answers it: (overrides, its message's first line).
SAME_ANSWER = {
    "group choice": (["model=qwen3_9b"], "error: model='qwen3_9b': no such model choice"),
    "reward choice": (["reward=shaped"], "error: reward='shaped': no such reward choice"),
    "key that moved": (["econfig.invalid_format_penalty=0.2"],
                       "error: econfig.invalid_format_penalty='0.2': moved to reward.format_penalty (the reward "
                       "group holds the reward's settings)"),
    "key": (["econfig.max_stepz=3"], "error: econfig.max_stepz=3: unknown key: 'econfig' has no 'max_stepz'"),
    "added key": (["+econfig.max_stepz=3"], "error: econfig.max_stepz=3: unknown key: 'econfig' has no 'max_stepz'"),
    "top-level key": (["seeed=3"], "error: seeed=3: unknown key: the top level has no 'seeed'"),
    "AReaL key": (["actor.optimizer.lrr=1e-5"],
                  "error: actor.optimizer.lrr=1e-05: unknown key: 'actor.optimizer' has no 'lrr'"),
    "choice": (["mode=trian"], "error: mode='trian': not one of the choices"),
    "AReaL choice": (["actor.optimizer.type=adamw"], "error: actor.optimizer.type='adamw': not one of the choices"),
    "range": (["eval.server.port=99999"], "error: eval.server.port=99999: must lie in [1, 65535]"),
    "float range, int given": (["gconfig.temperature=3"], "error: gconfig.temperature=3.0: must lie in [0, 2]"),
    "AReaL key's range": (["actor.optimizer.lr=0"], "error: actor.optimizer.lr=0.0: must be greater than 0"),
    "key beside a sweep": (["-m", "model=qwen3_8b,qwen3_1_7b", "econfig.max_stepz=3"],
                           "error: econfig.max_stepz=3: unknown key: 'econfig' has no 'max_stepz'"),
}


@pytest.mark.parametrize("case", SAME_ANSWER)
def test_a_typo_is_answered_early_as_composition_answers_it(case, tmp_path):
    overrides, first_line = SAME_ANSWER[case]
    argv = [*VALID, *overrides]
    with pytest.raises(ConfigError) as raised:
        answered_early(normalised(argv))
    assert str(raised.value).splitlines()[0] == first_line
    answers = [early(*argv, cwd=tmp_path), composed(*argv, cwd=tmp_path)]
    assert [a.returncode for a in answers] == [BAD_INPUT_EXIT_CODE] * 2
    assert answers[0].stderr == answers[1].stderr == f"{raised.value}\n"
    assert answers[0].stdout == "" and not (tmp_path / "outputs").exists()


def test_an_unknown_parent_key_is_named_early(tmp_path):
    """Composition says only that Hydra could not override the key; the early check names the
    part that does not exist, with the keys that do."""
    argv = [*VALID, "econfg.max_steps=3"]
    answer = early(*argv, cwd=tmp_path)
    assert answer.returncode == BAD_INPUT_EXIT_CODE
    assert answer.stderr.splitlines()[0] == "error: econfg.max_steps=3: unknown key: the top level has no 'econfg'"
    assert "  fix:   did you mean 'econfig'?" in answer.stderr
    assert composed(*argv, cwd=tmp_path).returncode == BAD_INPUT_EXIT_CODE  # refused there too


# Not the index's to judge: composition and validation answer these (with their own message).
LEFT_TO_COMPOSITION = {
    "wrong type": ["econfig.max_steps=abc"],
    "free-form mapping": ["econfig.user_llm_args.top_k=5"],
    "domain map": ["data.weights.airline=2"],
    "interpolation": ["econfig.max_steps=${domain.max_steps}"],
    "null": ["eval.server.port=null"],
    "swept value": ["-m", "eval.server.port=1,99999"],
    "list item": ["actor.scheduling_spec.0.cpu=0"],
    "Hydra's own": ["hydra.job.chdir=true"],
}


@pytest.mark.parametrize("case", LEFT_TO_COMPOSITION)
def test_what_the_index_cannot_judge_is_left_to_composition(case):
    assert answered_early(normalised([*VALID, *LEFT_TO_COMPOSITION[case]])) is False


@pytest.fixture(scope="module")
def hydras_help(tmp_path_factory) -> str:
    """`--help` as Hydra answers it from the composed config (the early answer skipped)."""
    answer = composed("--help", cwd=tmp_path_factory.mktemp("help"))
    assert answer.returncode == 0, answer.stderr
    return answer.stdout


@pytest.mark.parametrize("argv", [["--help"], ["-h", "model=qwen3_8b"]], ids=["--help", "-h with a choice"])
def test_help_is_answered_early_as_hydra_answers_it(argv, hydras_help, tmp_path):
    answer = early(*argv, cwd=tmp_path)
    assert answer.returncode == 0
    assert answer.stdout == hydras_help
    assert "model: qwen3_1_7b, qwen3_235b_a22b, qwen3_30b_a3b, qwen3_8b, tiny_qwen3\n" in answer.stdout
    assert "schema: allocation, cluster, data, domain, model, ray, reward, slurm, tracking, user_sim\n" in answer.stdout


def test_a_typo_and_help_load_no_areal_in_a_fresh_interpreter(tmp_path):
    """tau2train and tau2train-user-sim (which composes as tau2train does) alike."""
    code = (
        "import sys\n"
        "from tau2train.run import main\n"
        "from tau2train.user_sim.command import main as user_sim\n"
        "for command, argv in ((main, ['model=qwen3_9b']), (main, ['econfig.max_stepz=3']),\n"
        "                      (main, ['eval.server.port=0']), (user_sim, ['user_sim.port=0']),\n"
        "                      (main, ['econfig.turn_discount=0.9']),\n"
        "                      (main, ['--help']), (user_sim, ['--help'])):\n"
        "    try:\n"
        "        command(argv)\n"
        "    except SystemExit as stop:\n"
        "        print('exit', stop.code, file=sys.stderr)\n"
        "print(sorted(m for m in ('areal', 'torch', 'transformers', 'tau2') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert done.stdout.startswith("tau2train: train τ²-bench customer-service agents")
    assert "usage: tau2train-user-sim" in done.stdout
    assert [line for line in done.stderr.splitlines() if line.startswith("exit")] == ["exit 2"] * 5
    assert "error: econfig.turn_discount='0.9': moved to reward.turn_discount" in done.stderr
    assert "error: user_sim.port=0: must lie in [1, 65535]" in done.stderr
