"""mode=sft at the released size: checking and tokenising AReaL-tau2-data's SFT file, against
the bare tokenizer on the same text, in the same run.

    python benchmarks/areal_sft.py [--rows 33531] [--max-length 32768]

Generates (in a temporary folder) a synthetic `tau2_sft_train.jsonl` of the released size
(33,531 lines; ~74% correct=1, as released: ~24.8k), cycling the test fixture's rows
(tests/helpers/areal_tau2.py: each with its domain's whole τ² policy, and for airline and
retail its tools, in the system prompt, both tool-call shapes, thinking). Tokenised with Qwen's
real tokenizer (tests/tau2train/serving/tiny_qwen.py) and Qwen3's real chat template. Then:

* load: tau2train.config.areal_sft.load (every line parsed and checked, correct rows kept):
  time and RSS growth;
* tokenise: tau2train.launch.sft.sft_dataset (each kept example rendered twice by the chat
  template, prompt and answer encoded, loss mask built, Arrow chunks of sft.CHUNK rows): the
  datasets.Dataset handed to AReaL's SFTTrainer, time against the baseline: the tokenizer
  encoding each example's full rendered text once, with no mask (the irreducible cost);
* memory: RSS growth while tokenising against the Dataset's Arrow size (what the rows are
  worth), and the same rows built whole as Python lists first (sft.CHUNK = every row), the way
  a plain Dataset.from_list would.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from loguru import logger  # noqa: E402

logger.disable("tau2")

from helpers.areal_tau2 import SFT_LINES, sft_lines  # noqa: E402
from tau2train.serving.tiny_qwen import tiny_qwen_dir  # noqa: E402

from tau2train.config import areal_sft  # noqa: E402
from tau2train.launch import sft  # noqa: E402
from tau2train.records.areal_sft import SFT_FILE  # noqa: E402

RELEASED_ROWS = 33_531
QWEN3_TEMPLATE = ROOT / "tests" / "helpers" / "qwen3_chat_template.jinja"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_file(root: Path, n_rows: int) -> Path:
    """`n_rows` lines cycling the fixture's, each dialog id made unique."""
    path = root / SFT_FILE
    with open(path, "w") as out:
        for i, (line, _) in zip(range(n_rows), itertools.cycle(zip(sft_lines(), SFT_LINES))):
            row = json.loads(line)
            domain = row["metadata"]["source_dialog_id"].split("_", 1)[0]
            row["metadata"]["source_dialog_id"] = f"{domain}_dialog_{i}"
            out.write(json.dumps(row) + "\n")
    return path


def qwen3_tokenizer(target: Path):
    from transformers import AutoTokenizer

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_qwen_dir() / name, target / name)
    (target / "chat_template.jinja").write_text(QWEN3_TEMPLATE.read_text())
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return AutoTokenizer.from_pretrained(target)


def baseline(loaded, tokenizer) -> tuple[float, int]:
    """The bare tokenizer on each example's full rendered text, rendered beforehand."""
    texts = [tokenizer.apply_chat_template([*e.messages, e.answer], tokenize=False) for e in loaded.examples]
    start = time.perf_counter()
    tokens = sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    return time.perf_counter() - start, tokens


def tokenise_here(folder: Path, chunk: int, max_length: int) -> dict:
    """One variant, in this (fresh) process: the peak RSS growth while tokenising is its own."""
    tokenizer = qwen3_tokenizer(Path(tempfile.mkdtemp(dir=folder)))
    loaded = areal_sft.load(str(folder), None, correct_only=True)
    sft.CHUNK = chunk
    before, start = peak_mb(), time.perf_counter()
    dataset, stats = sft.sft_dataset(loaded, tokenizer, max_length)
    return {**stats, "seconds": time.perf_counter() - start, "peak_growth_mb": peak_mb() - before,
            "arrow_mb": dataset.data.nbytes / 2**20}


def variant(folder: Path, chunk: int, max_length: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--variant-of", str(folder), "--chunk", str(chunk),
                          "--max-length", str(max_length)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=RELEASED_ROWS)
    parser.add_argument("--max-length", type=int, default=32768)
    parser.add_argument("--variant-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant_of:
        print(json.dumps(tokenise_here(args.variant_of, args.chunk, args.max_length)))
        return

    folder = Path(tempfile.mkdtemp(prefix="areal-sft-bench-"))
    try:
        file = write_file(folder, args.rows)
        print(f"{args.rows} SFT lines, {file.stat().st_size / 2**20:.0f} MiB")

        before, start = rss_mb(), time.perf_counter()
        loaded = areal_sft.load(str(folder), None, correct_only=True)
        print(f"load + check: {time.perf_counter() - start:.1f} s, RSS +{rss_mb() - before:.0f} MiB; "
              f"{areal_sft.summary(loaded)}")

        found = {}
        for label, chunk in (("chunked", sft.CHUNK), ("whole lists", len(loaded.examples) + 1)):
            r = found[label] = variant(folder, chunk, args.max_length)
            print(f"tokenise ({label}, {chunk} rows a chunk, own process): {r['seconds']:.1f} s for {r['rows']} rows "
                  f"({r['tokens_mean']} tokens on average, max {r['tokens_max']}, {r['answer_tokens']} answer "
                  f"tokens); Arrow {r['arrow_mb']:.0f} MiB; peak RSS +{r['peak_growth_mb']:.0f} MiB")

        base_s, base_tokens = baseline(loaded, qwen3_tokenizer(Path(tempfile.mkdtemp(dir=folder))))
        print(f"baseline (bare encode of the rendered text): {base_s:.1f} s, {base_tokens} tokens")
        chunked, whole = found["chunked"], found["whole lists"]
        print(f"ratio tokenise / baseline: {chunked['seconds'] / base_s:.2f}x time; peak RSS growth / Arrow size: "
              f"chunked {chunked['peak_growth_mb'] / chunked['arrow_mb']:.1f}x, "
              f"whole lists {whole['peak_growth_mb'] / whole['arrow_mb']:.1f}x")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
