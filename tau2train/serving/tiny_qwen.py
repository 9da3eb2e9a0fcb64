"""A tiny, randomly initialised Qwen3 built on this machine: no download, no network.

The tokenizer is Qwen's real one: the 151643 byte-level BPE ranks Qwen2 and Qwen3 share (the
`qwen.tiktoken` rank file that ships inside installed packages: qwen_agent, dashscope), Qwen's
pre-tokenizer regex, NFC normalisation and Qwen3's 26 added tokens at their published ids
(<|endoftext|> 151643 ... </think> 151668), converted to a Hugging Face fast tokenizer by
transformers' own `TikTokenConverter`. Its chat template is tau2train's
(tau2train/chat_templates/qwen_nonthinking.jinja), so prompts render as they do in training.

The model is a 2-layer `Qwen3ForCausalLM` (4 heads, 2 KV heads) with Qwen3's real embedding
size (151936), float32 and tied embeddings, in one of two widths (WIDTHS): hidden 64, about 10M
parameters, the tests' model; hidden 128, about 20M, experiment=cpu_miniature's (it learns the mock
tasks in half the SFT steps, for 1.4x the time a step). Fast on CPU, but a real transformer
with real logits, so sampling, log-probabilities and weight reloads are real.

    build_tiny_qwen(target, hidden_size)  # build into `target` (idempotent, atomic)
    tiny_qwen_dir(hidden_size)            # the shared build under $TAU2TRAIN_CACHE_DIR or ~/.cache/tau2train
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

# Qwen2/Qwen3's pre-tokenizer: single digits (\p{N}, not cl100k's \p{N}{1,3}).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Ids 0..151642 are BPE ranks; Qwen3's added tokens follow contiguously from here.
FIRST_ADDED_ID = 151643
# Qwen3's added tokens in id order, with their "special" flag as in its tokenizer_config.json:
# the tool-call, tool-response, think and FIM markers are ordinary (special=False) added tokens,
# so decoding with skip_special_tokens=True keeps them (tool-call parsers rely on that).
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),  # 151643
    ("<|im_start|>", True),  # 151644
    ("<|im_end|>", True),  # 151645
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),  # 151656
    ("<tool_call>", False),  # 151657
    ("</tool_call>", False),  # 151658
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),  # 151665
    ("</tool_response>", False),  # 151666
    ("<think>", False),  # 151667
    ("</think>", False),  # 151668
)
ENDOFTEXT_ID = 151643
IM_START_ID = 151644
IM_END_ID = 151645

# Everything the build depends on besides the rank file and the chat template (both hashed
# by content into the cache key): change any of it and the cache key changes with it.
# The hidden-64 build's; model_config() scales it to the other widths.
MODEL_CONFIG = {
    "vocab_size": 151936,  # Qwen3's embedding rows (151669 tokens, padded)
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 4096,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "bos_token_id": ENDOFTEXT_ID,
    "eos_token_id": IM_END_ID,
    "pad_token_id": ENDOFTEXT_ID,
}
# hidden sizes a build comes in: 64 (tests, model=tiny_qwen3), 128 (experiment=cpu_miniature)
WIDTHS = (64, 128)
DEFAULT_WIDTH = 64
SEED = 20250101
EOS_TOKEN_IDS = [IM_END_ID, ENDOFTEXT_ID]  # generation_config.json, as Qwen3 publishes it
# The file written last inside a build: its presence marks the build complete.
MARKER = "tiny_qwen_build.json"


def rank_file() -> Path:
    """The `qwen.tiktoken` rank file of an installed package (qwen_agent or dashscope)."""
    for package, relative in (
        ("qwen_agent", "utils/qwen.tiktoken"),
        ("dashscope", "resources/qwen.tiktoken"),
    ):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            candidate = Path(spec.origin).parent / relative
            if candidate.is_file():
                return candidate
    raise FileNotFoundError("no qwen.tiktoken found: install qwen-agent or dashscope")


def load_ranks(path: Path | None = None) -> dict[bytes, int]:
    """The BPE ranks of a tiktoken file (one `base64-token rank` pair a line)."""
    ranks = {}
    for line in (path or rank_file()).read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def chat_template() -> str:
    """tau2train's non-thinking Qwen chat template, read from the installed package."""
    return (importlib.resources.files("tau2train") / "chat_templates" / "qwen_nonthinking.jinja").read_text()


def model_config(hidden_size: int = DEFAULT_WIDTH) -> dict:
    """The build's Qwen3 config at `hidden_size` (one of WIDTHS): the MLP twice as wide, the
    same 4 heads of hidden/4 dimensions."""
    if hidden_size not in WIDTHS:
        raise ValueError(f"a tiny Qwen3 is built with hidden size {' or '.join(map(str, WIDTHS))}, not {hidden_size}")
    return {**MODEL_CONFIG, "hidden_size": hidden_size, "intermediate_size": 2 * hidden_size,
            "head_dim": hidden_size // MODEL_CONFIG["num_attention_heads"]}


@functools.cache
def build_key(hidden_size: int = DEFAULT_WIDTH) -> str:
    """A short hash of everything a build is made of: parameters, rank file, chat template.
    Once a process per width: all three are package data, and hashing the 2 MB rank file took
    ~7 ms, for each of the ~8 times a compose resolves the model's path."""
    digest = hashlib.sha256()
    recipe = {
        "config": model_config(hidden_size),
        "seed": SEED,
        "eos": EOS_TOKEN_IDS,
        "pattern": QWEN_PATTERN,
        "added": ADDED_TOKENS,
    }
    digest.update(json.dumps(recipe, sort_keys=True).encode())
    digest.update(rank_file().read_bytes())
    digest.update(chat_template().encode())
    return digest.hexdigest()[:12]


def _build_tokenizer():
    """Qwen's tokenizer as a `PreTrainedTokenizerFast`, added tokens at their real ids.

    transformers' TikTokenConverter turns the ranks into byte-level BPE vocab and merges (it
    reads the file through tiktoken, which keeps a copy in its cache directory).
    """
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(rank_file()), pattern=QWEN_PATTERN).converted()
    backend.normalizer = normalizers.NFC()  # as in Qwen's published tokenizer.json
    if backend.get_vocab_size() != FIRST_ADDED_ID:
        raise ValueError(f"expected {FIRST_ADDED_ID} BPE ranks, got {backend.get_vocab_size()}")
    # One at a time, in id order, so each lands on the next id whatever its special flag.
    for token, special in ADDED_TOKENS:
        added = AddedToken(token, special=special, normalized=False)
        if special:
            backend.add_special_tokens([added])
        else:
            backend.add_tokens([added])
    for token_id, (token, _) in enumerate(ADDED_TOKENS, start=FIRST_ADDED_ID):
        if backend.token_to_id(token) != token_id:
            raise ValueError(f"{token} landed on {backend.token_to_id(token)}, not {token_id}")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=[t for t, special in ADDED_TOKENS[1:] if special],  # as Qwen3's
        clean_up_tokenization_spaces=False,
        model_max_length=MODEL_CONFIG["max_position_embeddings"],
    )
    tokenizer.chat_template = chat_template()
    return tokenizer


def _build_model(hidden_size: int):
    """The random 2-layer Qwen3, initialised from SEED without touching the global RNG."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**model_config(hidden_size), dtype=torch.float32)
    config.architectures = ["Qwen3ForCausalLM"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = Qwen3ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ENDOFTEXT_ID, eos_token_id=EOS_TOKEN_IDS, pad_token_id=ENDOFTEXT_ID
    )
    return model


def build_tiny_qwen(target: Path, hidden_size: int = DEFAULT_WIDTH) -> Path:
    """Build the tokenizer and model of width `hidden_size` into `target` and return it.

    Idempotent and safe under concurrency: a complete build already at `target` is returned
    as is; otherwise everything is written into a sibling temporary directory that is renamed
    onto `target` only once complete, so no reader ever sees half a model. When two builders
    race, the first rename wins and the other discards its copy.
    """
    target = Path(target)
    if (target / MARKER).is_file():
        return target
    if target.exists():
        raise FileExistsError(f"{target} exists but holds no complete tiny-Qwen build")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from the group
    try:
        _build_tokenizer().save_pretrained(staging)
        _build_model(hidden_size).save_pretrained(staging, safe_serialization=True)
        marker = {"key": build_key(hidden_size), "seed": SEED, "hidden_size": hidden_size}
        (staging / MARKER).write_text(json.dumps(marker) + "\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / MARKER).is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def cache_root() -> Path:
    """Where shared test artefacts live: $TAU2TRAIN_CACHE_DIR, else ~/.cache/tau2train."""
    return Path(os.environ.get("TAU2TRAIN_CACHE_DIR") or Path.home() / ".cache" / "tau2train")


def tiny_qwen_path(hidden_size: int = DEFAULT_WIDTH) -> Path:
    """Where the shared tiny-Qwen build of the current recipe lives (built or not)."""
    return cache_root() / f"tiny-qwen3-{build_key(hidden_size)}"


def tiny_qwen_dir(hidden_size: int = DEFAULT_WIDTH) -> Path:
    """The shared tiny-Qwen build for the current recipe, built on first use."""
    return build_tiny_qwen(tiny_qwen_path(hidden_size), hidden_size)


def tiny_qwen_width(path: str | Path) -> int | None:
    """The width of the shared build at `path` (built or not), None for any other path."""
    return next((w for w in WIDTHS if str(path) == str(tiny_qwen_path(w))), None)
