"""The CPU inference server: SGLang's native HTTP protocol over a small Hugging Face model.

SGLang needs a GPU; AReaL's rollout client (areal.engine.sglang_remote.RemoteSGLangEngine)
only needs SGLang's HTTP API. This server answers that API with a Hugging Face causal LM on
CPU (float32, no grad, KV cache): real sampling, real per-token log-probabilities and real
weight reloads, so AReaL's trainer runs end to end without a GPU. It is tau2train's inference
backend for models small enough for a CPU (allocation=cpu_*: the miniature recipe's tiny
Qwen3, tau2train.serving.tiny_qwen) and the tests' policy server; never a backend for
reported numbers.

Endpoints (the subset AReaL 1.0.4 and tau2train's `mode=eval` use, answered in SGLang's shapes):

    POST /generate                  input_ids (or text), sampling_params, return_logprob,
                                    logprob_start_len, return_text_in_logprobs, rid
    POST /v1/chat/completions       OpenAI's chat API (non-streaming, n=1): messages, tools,
                                    tool_choice auto|none, temperature, top_p, top_k,
                                    max_tokens | max_completion_tokens, seed, stop, logprobs,
                                    chat_template_kwargs; the reply's tool calls parsed by
                                    SGLang's --tool-call-parser (default qwen25)
    GET  /health, /health_generate  liveness; one real 1-token generation
    GET  /get_model_info, /get_server_info, /v1/models
    POST /update_weights_from_disk  {"model_path", "abort_all_requests", "weight_version"}
    POST /pause_generation          aborts in-flight requests, holds new ones until ...
    POST /continue_generation
    GET|POST /flush_cache           empties the prefix cache
    POST /release_memory_occupation, /resume_memory_occupation   no-ops (AReaL offload/onload)

Semantics follow SGLang where AReaL can tell the difference:

* Log-probabilities are those of the distribution the token was drawn from after temperature
  scaling, log_softmax(logits / T), before top-k/top-p truncation; greedy requests
  (temperature 0) report log_softmax(logits). That is SGLang's default (unless
  SGLANG_RETURN_ORIGINAL_LOGPROB is set), and what AReaL's trainer recomputes (it divides the
  training logits by the same temperature).
* The finish reason is checked as SGLang's Req.check_finished does: length first, then stop
  token ids and the model's EOS ids (both skipped when ignore_eos), then stop strings. The
  stopping token is part of output_ids and output_token_logprobs; `text` leaves it out.
  Stop strings are matched in the decoded output and cut from `text` (tokens are kept).
* /pause_generation (mode "abort", what AReaL sends) aborts what is running: it answers with
  finish_reason {"type": "abort"} and the tokens made so far, which AReaL's agenerate
  resubmits after the pause. Requests that arrive while paused wait for /continue_generation.
* /update_weights_from_disk loads the checkpoint into the live model (shapes must match, as
  in SGLang), after the running request unless abort_all_requests aborts it first.
* Sampling draws exactly from the (truncated) distribution by inverse CDF: one uniform from
  the request's generator (its sampling_seed, else the server's --random-seed stream) located
  in float64 cumulative sums (Policy._draw), instead of torch.multinomial (7-60 ms a token
  over Qwen's 152k-token vocabulary on this project's 2 shared cores, against under 1 ms).
* Prefix cache (SGLang's radix cache, in small): the KV caches of the last
  PREFIX_CACHE_ENTRIES sequences (prompt and output) are kept, and a request sharing a
  prefix with one computes only the rest; meta_info.cached_tokens says how many prompt tokens
  it reused. Log-probabilities are those of a cold pass to float tolerance. A weight update
  and /flush_cache empty it.
* /v1/chat/completions follows SGLang's serving_chat: the request is parsed by SGLang's own
  ChatCompletionRequest; the prompt is the chat template (the tokenizer's, or --chat-template's
  Jinja file) over the messages and tools, with the generation prompt; omitted sampling
  parameters take the model's generation_config values; with tools, special tokens are kept
  in the text; the text is split by --reasoning-parser (when given) and then the tool-call
  parser, and a natural stop with a tool call finishes as "tool_calls". What SGLang would
  constrain or stream (tool_choice required, response_format, stream) is refused with 400.

A subclass may replay given tokens instead of sampling (`_forced_for`): the tests' forcing
server does (tests/helpers/cpu_sglang.py); this one always samples.

One worker thread runs all model work (generation and weight loads), in arrival order; the
HTTP side stays responsive meanwhile. In-process:

    server = CPUSGLangServer(model_path); server.start(); ... server.stop()

or as a process, accepting (and ignoring) the other sglang.launch_server flags AReaL passes:

    python -m tau2train.serving.cpu_sglang --model-path DIR --host 127.0.0.1 --port 30000 \
        [--tool-call-parser qwen25] [--reasoning-parser qwen3] [--chat-template FILE.jinja] \
        [--torch-threads N]

On cores shared with other busy processes (AReaL's trainer, other servers), --torch-threads 1
(or OMP_NUM_THREADS=1) can be several times faster: with more threads than free cores, every
vocabulary-wide operation waits for a descheduled thread.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import copy
import json
import logging
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from aiohttp import web

logger = logging.getLogger("tau2train.serving.cpu_sglang")

VERSION = "cpu-sglang (tau2train CPU inference server)"
GREEDY_EPS = 1e-6  # SGLang samples greedily below this temperature
# Recent sequences whose KV caches are kept for requests that extend them (PrefixCache).
PREFIX_CACHE_ENTRIES = 4
# Top-p alone first looks at this many most probable tokens; it sorts the whole vocabulary
# only when they hold no more than top_p of the mass (Policy._top).
TOP_P_PROBE = 1024
# The block size of the two-level inverse-CDF search (Policy._draw).
DRAW_BLOCK = 1024
# The /generate fields this server honours, and those of features it does not model, which it
# accepts only switched off (falsy: AReaL always sends image_data=[]).
GENERATE_FIELDS = frozenset(
    {
        "input_ids",
        "text",
        "sampling_params",
        "return_logprob",
        "logprob_start_len",
        "return_text_in_logprobs",
        "rid",
    }
)
SWITCHED_OFF = frozenset({"stream", "image_data", "lora_path", "return_routed_experts", "top_logprobs_num"})
# The same for /v1/chat/completions (fields of SGLang's ChatCompletionRequest); its sampling
# fields go through SamplingParams, which refuses what it does not model.
CHAT_SWITCHED_OFF = frozenset(
    {
        "stream",
        "response_format",
        "top_logprobs",
        "continue_final_message",
        "lora_path",
        "return_hidden_states",
        "return_routed_experts",
        "custom_logit_processor",
    }
)
DEFAULT_TOOL_CALL_PARSER = "qwen25"  # SGLang's name for Qwen2.5/Qwen3's <tool_call> blocks


class BadRequest(ValueError):
    """A request this server cannot serve as SGLang would: answered with HTTP 400."""


@dataclass
class SamplingParams:
    """The sampling parameters of a /generate request (SGLang's names and defaults).

    Parameters SGLang knows but this server does not model are accepted only at their
    neutral value, so a test relying on one fails loudly instead of silently diverging.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    sampling_seed: int | None = None

    NEUTRAL: ClassVar[dict[str, Any]] = {
        "n": 1,
        "min_p": 0.0,
        "min_new_tokens": 0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
        "repetition_penalty": 1.0,
        "no_stop_trim": False,
        "spaces_between_special_tokens": True,
    }

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> SamplingParams:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in (raw or {}).items():
            if value is None:
                continue
            if key in known:
                values[key] = value
            elif key not in cls.NEUTRAL or value != cls.NEUTRAL[key]:
                raise BadRequest(f"sampling parameter {key}={value!r} is not supported on CPU")
        if isinstance(values.get("stop"), str):
            values["stop"] = [values["stop"]]
        params = cls(**values)
        if params.max_new_tokens < 0:
            raise BadRequest("max_new_tokens must be >= 0")
        return params

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_EPS or self.top_k == 1

    @property
    def scale(self) -> float:
        """What the logits are divided by before log_softmax: 1 when greedy, as in SGLang
        (whose greedy path reports log_softmax of the raw logits)."""
        return 1.0 if self.greedy else float(self.temperature)


@dataclass
class Generation:
    """What one /generate produced, before it is shaped into SGLang's JSON."""

    output_ids: list[int]
    output_logprobs: list[float]
    finish_reason: dict[str, Any]
    input_logprobs: list[float | None] | None  # from logprob_start_len on, when asked
    cached_tokens: int = 0  # prompt tokens whose keys and values came from the prefix cache


@dataclass
class Prefill:
    """A forward pass over a sequence: the logits kept, the KV cache it leaves (covering the
    whole sequence) and how many leading tokens came from the prefix cache."""

    logits: torch.Tensor  # [positions kept, vocab], the last position last
    past: Any  # transformers' Cache
    cached: int


class PrefixCache:
    """The KV caches of the last few sequences, so that a request sharing a prefix with one
    (a τ² episode's next turn: the same system prompt and tools, the conversation so far)
    computes only its new suffix, as SGLang's radix cache does.

    Entries are keyed by their exact token sequence and evicted least recently used first.
    `take` hands out a private copy: a forward pass grows the cache it is given in place, and
    an entry must keep describing exactly its own tokens. Only caches made of plain
    DynamicLayers are kept (a sliding-window or linear-attention layer cannot be cut back to a
    prefix). Weights that change make every entry wrong: the owner clears it then.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._entries: collections.OrderedDict[tuple[int, ...], Any] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, tokens: list[int], limit: int) -> tuple[int, Any]:
        """(n, a private copy of the cache of tokens[:n]) for the longest cached n <= limit;
        (0, None) when no entry shares a first token."""
        best, reused = None, 0
        for key in self._entries:
            n = common_prefix(key, tokens, limit)
            if n > reused:
                best, reused = key, n
        if best is None:
            return 0, None
        self._entries.move_to_end(best)
        cache = copy.deepcopy(self._entries[best])
        cache.crop(reused)
        return reused, cache

    def put(self, tokens: list[int], cache: Any) -> None:
        """Keep `cache` (which must cover exactly `tokens`; the caller gives it up) as the most
        recent entry. An entry it extends is dropped, as it serves all that one served; when an
        entry already extends it, that one is kept instead (marked recent)."""
        if not self.capacity or not tokens or not croppable(cache) or cache.get_seq_length() != len(tokens):
            return
        key = tuple(tokens)
        for old in list(self._entries):
            if old[: len(key)] == key:
                self._entries.move_to_end(old)
                return
            if key[: len(old)] == old:
                del self._entries[old]
        self._entries[key] = cache
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def locate(cdf: torch.Tensor, u: float) -> int:
    """The first index whose cumulative weight exceeds u (u in [0, cdf[-1])): an index with
    positive weight. Should rounding put u at the total, the last index with weight."""
    index = int(torch.searchsorted(cdf, torch.tensor(u, dtype=cdf.dtype), right=True))
    if index == cdf.numel():
        index = int(torch.searchsorted(cdf, cdf[-1]))
    return index


def common_prefix(a: tuple[int, ...], b: list[int], limit: int) -> int:
    """The length of a's and b's common prefix, at most `limit`."""
    n = min(len(a), len(b), limit)
    if n <= 0 or list(a[:n]) == b[:n]:
        return max(n, 0)
    return next(i for i in range(n) if a[i] != b[i])


def croppable(cache: Any) -> bool:
    """Whether `cache` is a DynamicCache of full-attention layers only (crop() is exact)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


class Policy:
    """The model and tokenizer, and generation on CPU. Not thread-safe: one caller at a time."""

    def __init__(
        self,
        model_path: str,
        tokenizer_path: str,
        seed: int,
        context_length: int | None,
        prefix_cache_entries: int = PREFIX_CACHE_ENTRIES,
    ):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
        self.model = self._load(model_path)
        self.model_path = model_path
        self.context_length = context_length or self.model.config.max_position_embeddings
        # SGLang stops on the generation config's EOS ids and the tokenizer's EOS.
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {
            self.tokenizer.eos_token_id
        }
        self.generator = torch.Generator().manual_seed(seed)
        self.prefixes = PrefixCache(prefix_cache_entries)

    @staticmethod
    def _load(path: str):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def load_weights(self, path: str) -> None:
        """Load a checkpoint into the live model; raises if its tensors do not fit it. Cached
        prefixes were computed by the old weights: they go, even when loading fails half-way."""
        self.prefixes.clear()
        fresh = self._load(path)
        self.model.load_state_dict(fresh.state_dict(), strict=True)
        self.model_path = path

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """The generation config's sampling parameters, which SGLang's chat API uses where a
        request leaves one out (its default --sampling-defaults model)."""
        config = self.model.generation_config.to_dict()
        names = ("repetition_penalty", "temperature", "top_k", "top_p", "min_p")
        return {name: config[name] for name in names if config.get(name) is not None}

    def encode_forced(self, completion: str | list[int]) -> list[int]:
        if isinstance(completion, str):
            return self.tokenizer.encode(completion, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return [int(t) for t in completion]

    @torch.inference_mode()
    def generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        forced: list[int] | None = None,
        logprob_start_len: int | None = None,
        aborted: Callable[[], bool] = lambda: False,
    ) -> Generation:
        """Sample (or replay `forced`) after `prompt`; `aborted` is polled before each step.

        With logprob_start_len set, also the log-probability of each prompt token from that
        position on (None for position 0, which has no context), as SGLang's
        input_token_logprobs.
        """
        if not prompt:
            raise BadRequest("the input is empty")
        if not all(0 <= t < self.model.config.vocab_size for t in prompt + (forced or [])):
            raise BadRequest(f"token ids must lie in [0, {self.model.config.vocab_size})")
        if len(prompt) >= self.context_length:
            raise BadRequest(
                f"the input ({len(prompt)} tokens) is longer than the model's context length "
                f"({self.context_length} tokens)"
            )
        if logprob_start_len is not None and not 0 <= logprob_start_len < len(prompt):
            raise BadRequest(f"logprob_start_len {logprob_start_len} is outside the input")
        budget = min(params.max_new_tokens, self.context_length - len(prompt))
        if aborted():
            return Generation([], [], {"type": "abort", "message": "Abort before prefill"}, None)
        # The logits needed: from the one predicting the first scored prompt token on.
        first_scored = len(prompt) if logprob_start_len is None else max(logprob_start_len, 1)
        if forced is not None:
            return self._replay(prompt, forced[:budget], params, budget, first_scored, logprob_start_len)

        prefill = self._prefill(prompt, first_scored - 1)
        logprobs = torch.log_softmax(prefill.logits.float() / params.scale, dim=-1)
        input_logprobs = self._input_logprobs(prompt, logprobs[:-1], first_scored, logprob_start_len)
        step_logprobs, past = logprobs[-1], prefill.past
        generator = (
            self.generator
            if params.sampling_seed is None
            else torch.Generator().manual_seed(params.sampling_seed)
        )
        output_ids: list[int] = []
        output_logprobs: list[float] = []
        finish: dict[str, Any] | None = None if budget else {"type": "length", "length": budget}
        while finish is None:
            token = self._sample(step_logprobs, params, generator)
            output_ids.append(token)
            output_logprobs.append(float(step_logprobs[token]))
            finish = self._finished(output_ids, params, budget)
            if finish is None and aborted():
                finish = {"type": "abort", "message": "Abort in running batch"}
            if finish is None:
                out = self.model(input_ids=torch.tensor([[token]]), past_key_values=past, use_cache=True)
                step_logprobs = torch.log_softmax(out.logits[0, -1].float() / params.scale, dim=-1)
                past = out.past_key_values
        # The cache covers the prompt and every output token but the last (never fed back).
        self.prefixes.put((prompt + output_ids)[: past.get_seq_length()], past)
        return Generation(output_ids, output_logprobs, finish, input_logprobs, prefill.cached)

    def _prefill(self, ids: list[int], first_logit: int) -> Prefill:
        """One forward pass over `ids`, keeping the logits from position `first_logit` on; the
        longest cached prefix that leaves that position to compute is reused."""
        cached, past = self.prefixes.take(ids, first_logit)
        out = self.model(
            input_ids=torch.tensor([ids[cached:]]),
            past_key_values=past,
            use_cache=True,
            logits_to_keep=len(ids) - first_logit,
        )
        return Prefill(out.logits[0], out.past_key_values, cached)

    def _replay(self, prompt, forced, params, budget, first_scored, logprob_start_len) -> Generation:
        """The forced tokens with their teacher-forced log-probabilities (one forward pass).

        They finish as "stop" when the last is a stop token within the budget, else as
        "length" (also when a forced list of ids simply ends without one).
        """
        ids = prompt + forced
        prefill = self._prefill(ids, first_scored - 1)
        self.prefixes.put(ids, prefill.past)
        logprobs = torch.log_softmax(prefill.logits.float() / params.scale, dim=-1)
        n_input = len(prompt) - first_scored
        input_logprobs = self._input_logprobs(prompt, logprobs[:n_input], first_scored, logprob_start_len)
        output_logprobs = [float(logprobs[n_input + i, t]) for i, t in enumerate(forced)]
        stops = set() if params.ignore_eos else self.eos_ids | set(params.stop_token_ids)
        if forced and forced[-1] in stops and len(forced) < budget:
            finish = {"type": "stop", "matched": forced[-1]}
        else:
            finish = {"type": "length", "length": budget}
        return Generation(forced, output_logprobs, finish, input_logprobs, prefill.cached)

    @staticmethod
    def _input_logprobs(prompt, logprobs, first_scored, logprob_start_len) -> list[float | None] | None:
        if logprob_start_len is None:
            return None
        scored = [float(logprobs[i, t]) for i, t in enumerate(prompt[first_scored:])]
        return [None] * (first_scored - logprob_start_len) + scored

    @classmethod
    def _sample(cls, logprobs: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
        """Greedy, or a draw from the top-k/top-p truncation of exp(logprobs)."""
        if params.greedy:
            return int(torch.argmax(logprobs))
        n = logprobs.numel()
        k = params.top_k if 0 < params.top_k < n else n
        if k == n and params.top_p >= 1.0:
            return cls._draw(torch.softmax(logprobs, dim=-1), generator)
        top, order = cls._top(logprobs, k, params.top_p)
        if params.top_p < 1.0:
            # The smallest prefix whose mass reaches top_p (the first token always), measured
            # as SGLang's torch sampler does: on the top-k-truncated mass, not renormalised.
            top = top.masked_fill((torch.cumsum(top, 0) - top) > params.top_p, 0.0)
        return int(order[cls._draw(top, generator)])

    @staticmethod
    def _top(logprobs: torch.Tensor, k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The k most probable tokens' probabilities (descending) and ids. For top-p alone
        (k = the vocabulary) a full sort is rarely needed: when the TOP_P_PROBE most probable
        tokens already hold more than top_p, every token after them is cut anyway."""
        if k == logprobs.numel() and top_p < 1.0:
            top, order = torch.topk(logprobs, min(TOP_P_PROBE, k))
            if float(top.exp().sum()) > top_p:
                return top.exp(), order
        top, order = torch.topk(logprobs, k)
        return top.exp(), order

    @staticmethod
    def _draw(weights: torch.Tensor, generator: torch.Generator) -> int:
        """An index drawn with probability proportional to `weights` (1-D, non-negative): exact
        inverse-CDF sampling with one uniform from `generator`. torch.multinomial costs
        tens of milliseconds over Qwen's 152k-token vocabulary on CPU; this, under one.

        One cumulative sum of 152k float32 values would blur the smallest probabilities (its
        rounding step near 1 is 6e-8) and a float64 one costs milliseconds (the cast), so the
        search is two-level: float32 sums of DRAW_BLOCK-token blocks, the uniform located among
        their float64 cumulative sums, then within its block's float64 cumulative sum scaled to
        the block's mass. Each token is drawn in proportion to its weight, up to the float32
        rounding of its block's sum.
        """
        full = weights.numel() // DRAW_BLOCK * DRAW_BLOCK
        sums = weights[:full].view(-1, DRAW_BLOCK).sum(1)
        if full < weights.numel():
            sums = torch.cat([sums, weights[full:].sum().view(1)])
        masses = sums.double()
        block_cdf = torch.cumsum(masses, 0)
        u = float(torch.rand((), generator=generator, dtype=torch.float64)) * float(block_cdf[-1])
        block = locate(block_cdf, u)
        u -= float(block_cdf[block - 1]) if block else 0.0
        inner = torch.cumsum(weights[block * DRAW_BLOCK : (block + 1) * DRAW_BLOCK].double(), 0)
        return block * DRAW_BLOCK + locate(inner * (masses[block] / inner[-1]), u)

    def _finished(self, output_ids: list[int], params: SamplingParams, budget: int) -> dict[str, Any] | None:
        """SGLang's order: length, then stop/EOS token ids, then stop strings."""
        if len(output_ids) >= budget:
            return {"type": "length", "length": budget}
        last = output_ids[-1]
        if not params.ignore_eos and (last in self.eos_ids or last in params.stop_token_ids):
            return {"type": "stop", "matched": last}
        if params.stop:
            text = self.tokenizer.decode(output_ids, skip_special_tokens=params.skip_special_tokens)
            for stop in params.stop:
                if stop in text:
                    return {"type": "stop", "matched": stop}
        return None

    def text(self, generation: Generation, params: SamplingParams) -> str:
        """The decoded output as SGLang returns it: without the stopping token or string."""
        ids = generation.output_ids
        matched = generation.finish_reason.get("matched")
        if isinstance(matched, int):
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=params.skip_special_tokens)
        if isinstance(matched, str):
            text = text[: text.find(matched)]
        return text


@dataclass
class ToolCall:
    """One parsed tool call, as OpenAI's API returns it (arguments: a JSON string)."""

    id: str
    name: str
    arguments: str

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class ChatTurn:
    """A /v1/chat/completions request, checked: the messages and tools as the chat template
    takes them, the sampling parameters, and SGLang's own parse of the request (its pydantic
    ChatCompletionRequest: the tools for the parser, the logprobs flag)."""

    request: Any
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None  # None: no tools offered, or tool_choice "none"
    params: SamplingParams
    template_kwargs: dict[str, Any]


@dataclass
class ChatReply:
    """The assistant message made of a generation's text, as SGLang's chat API shapes it."""

    content: str | None
    reasoning_content: str | None
    tool_calls: list[ToolCall] | None
    finish_reason: str
    matched_stop: int | str | None


def sglang_chat_api() -> None:
    """Import SGLang's chat-API pieces (request model, template helpers, tool-call and reasoning
    parsers: about 2 s the first time); the chat endpoint runs this off the event loop."""
    import sglang.srt.entrypoints.openai.protocol
    import sglang.srt.function_call.function_call_parser
    import sglang.srt.parser.jinja_template_utils
    import sglang.srt.parser.reasoning_parser  # noqa: F401


class ChatAPI:
    """OpenAI's chat completions on top of Policy, as SGLang's server does them: the request
    checked by SGLang's own ChatCompletionRequest, the prompt rendered by the chat template
    (the tokenizer's, or --chat-template's file), the output parsed by SGLang's tool-call parser
    (--tool-call-parser) and, with --reasoning-parser, its reasoning parser.

    What the server cannot honour (streaming, n > 1, constrained decoding, forced tool choice,
    penalties, ...) is a BadRequest, never silently ignored.
    """

    def __init__(self, chat_template: str | Path | None, tool_call_parser: str, reasoning_parser: str | None):
        """Checks the flags (before the model loads: a typo fails the start fast)."""
        self.template = self._read_template(chat_template)
        self.tool_call_parser = tool_call_parser
        self.reasoning_parser = reasoning_parser
        if tool_call_parser != DEFAULT_TOOL_CALL_PARSER or reasoning_parser is not None:
            self._check_parsers()  # imports SGLang's parsers: only when a choice needs checking
        self._content_format: str | None = None

    @staticmethod
    def _read_template(path: str | Path | None) -> str | None:
        """SGLang's --chat-template: a Jinja file replacing the tokenizer's template (SGLang's
        built-in template names are not modelled here)."""
        if path is None:
            return None
        if not Path(path).is_file():
            raise ValueError(
                f"--chat-template {path}: no such file (only Jinja template files are supported)"
            )
        return Path(path).read_text()

    def _check_parsers(self) -> None:
        from sglang.srt.function_call.function_call_parser import FunctionCallParser
        from sglang.srt.parser.reasoning_parser import ReasoningParser

        if self.tool_call_parser not in FunctionCallParser.ToolCallParserEnum:
            known = sorted(FunctionCallParser.ToolCallParserEnum)
            raise ValueError(f"--tool-call-parser {self.tool_call_parser!r} is not one of SGLang's: {known}")
        if (
            self.reasoning_parser is not None
            and self.reasoning_parser.lower() not in ReasoningParser.DetectorMap
        ):
            known = sorted(ReasoningParser.DetectorMap)
            raise ValueError(f"--reasoning-parser {self.reasoning_parser!r} is not one of SGLang's: {known}")

    def content_format(self, tokenizer) -> str:
        """'string' or 'openai': how the template takes message content (SGLang's detection)."""
        if self._content_format is None:
            from sglang.srt.parser.jinja_template_utils import detect_jinja_template_content_format

            template = self.template or tokenizer.chat_template or ""
            self._content_format = detect_jinja_template_content_format(template)
        return self._content_format

    def parse(self, body: Any, policy: Policy) -> ChatTurn:
        """Check a request body as SGLang's chat API does: omitted sampling parameters are the
        model's generation config's, an omitted token budget is the rest of the context."""
        from pydantic import ValidationError
        from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest

        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError as e:
            raise BadRequest(f"invalid chat completion request: {e}") from None
        switched_on = sorted(name for name in CHAT_SWITCHED_OFF if getattr(request, name, None))
        if switched_on:
            raise BadRequest(f"not supported on CPU: {', '.join(switched_on)}")
        if request.tool_choice not in ("auto", "none"):
            raise BadRequest(f"tool_choice {request.tool_choice!r} is not supported on CPU (only auto, none)")
        tools = None
        if request.tools and request.tool_choice != "none":
            tools = [tool.model_dump() for tool in request.tools]
            request.skip_special_tokens = False  # as SGLang: tool-call markers may be special tokens
        with warnings.catch_warnings():  # SGLang reads its own deprecated max_tokens
            warnings.simplefilter("ignore", DeprecationWarning)
            sampling = request.to_sampling_params(request.stop, policy.sampling_defaults)
        if sampling["max_new_tokens"] is None:
            sampling["max_new_tokens"] = policy.context_length
        template_kwargs = dict(request.chat_template_kwargs or {})
        if request.reasoning_effort is not None:
            template_kwargs["reasoning_effort"] = request.reasoning_effort
        content_format = self.content_format(policy.tokenizer)
        messages = [self._message(message, content_format) for message in request.messages]
        return ChatTurn(request, messages, tools, SamplingParams.parse(sampling), template_kwargs)

    @staticmethod
    def _message(message, content_format: str) -> dict[str, Any]:
        """One message as the template takes it (SGLang's _apply_jinja_template): None content
        as "", text parts as the template's content format wants them, and tool-call arguments
        as objects, not JSON strings."""
        from sglang.srt.parser.jinja_template_utils import process_content_for_template_format

        if message.content is None:
            message.content = ""
        media: list[list] = [[], [], [], []]  # images, videos, audio, modalities
        processed = process_content_for_template_format(message.model_dump(), content_format, *media)
        if any(media):
            raise BadRequest("images, video and audio are not supported on CPU")
        for call in processed.get("tool_calls") or []:
            arguments = call.get("function", {}).get("arguments")
            if isinstance(arguments, str):
                try:
                    call["function"]["arguments"] = json.loads(arguments)
                except json.JSONDecodeError as e:
                    raise BadRequest(f"tool call arguments are not JSON: {arguments[:200]!r}") from e
        return processed

    def render(self, turn: ChatTurn, tokenizer) -> list[int]:
        """The prompt's token ids: the chat template over the messages and tools, with the
        generation prompt."""
        try:
            ids = tokenizer.apply_chat_template(
                turn.messages,
                tools=turn.tools,
                add_generation_prompt=True,
                tokenize=True,
                return_dict=False,
                chat_template=self.template,
                **turn.template_kwargs,
            )
        except Exception as e:
            raise BadRequest(f"the chat template failed on these messages: {type(e).__name__}: {e}") from e
        return list(ids)

    def reply(self, turn: ChatTurn, text: str, finish: dict[str, Any]) -> ChatReply:
        """Split the generated text as SGLang does: reasoning first (with a reasoning parser),
        then tool calls; a natural stop becomes "tool_calls" when the text holds a call."""
        from sglang.srt.function_call.function_call_parser import FunctionCallParser
        from sglang.srt.parser.reasoning_parser import ReasoningParser

        reason, matched = finish["type"], finish.get("matched")
        reasoning = None
        if self.reasoning_parser and turn.request.separate_reasoning:
            parser = ReasoningParser(self.reasoning_parser, stream_reasoning=False, request=turn.request)
            reasoning, text = parser.parse_non_stream(text)
        calls = None
        parser = FunctionCallParser(turn.request.tools, self.tool_call_parser) if turn.tools else None
        if parser is not None and parser.has_tool_call(text or ""):
            if reason == "stop":
                reason, matched = "tool_calls", None
            try:
                text, items = parser.parse_non_stream(text)
                calls = [
                    ToolCall(f"call_{uuid.uuid4().hex[:24]}", item.name, item.parameters) for item in items
                ]
            except Exception:
                logger.exception("tool call parsing failed")
        return ChatReply(text or None, reasoning or None, calls, reason, matched)


class CPUSGLangServer:
    """The HTTP server, on its own event loop in a background thread.

    `start()` blocks until it listens and returns `base_url`; `address` is the "host:port"
    form AReaL's engines take (`initialize(addr=...)`, AREAL_LLM_SERVER_ADDRS). What tests
    may watch: `finished` counts answered /generate and /v1/chat/completions requests by
    finish type ("stop", "length", "abort"), `weight_updates` counts successful reloads, and
    `busy` is set while the worker runs model work (to pause a generation mid-way).
    """

    def __init__(
        self,
        model_path: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tokenizer_path: str | Path | None = None,
        random_seed: int = 1,
        context_length: int | None = None,
        served_model_name: str | None = None,
        tool_call_parser: str = DEFAULT_TOOL_CALL_PARSER,
        reasoning_parser: str | None = None,
        chat_template: str | Path | None = None,
        prefix_cache_entries: int = PREFIX_CACHE_ENTRIES,
    ):
        self.model_path = str(model_path)
        self.tokenizer_path = str(tokenizer_path or model_path)
        self.host = host
        self.port = port
        self.served_model_name = served_model_name or self.model_path
        self.random_seed = random_seed
        self.chat = ChatAPI(chat_template, tool_call_parser, reasoning_parser)
        self.policy = Policy(
            self.model_path, self.tokenizer_path, random_seed, context_length, prefix_cache_entries
        )
        self.weight_version = "default"
        self.finished: collections.Counter[str] = collections.Counter()
        self.weight_updates = 0
        self.busy = threading.Event()
        # Model work runs here, one job at a time, in arrival order.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpu-sglang")
        # Bumped by every abort; a running generation stops when it no longer sees its own.
        self._abort_epoch = 0
        self._admitting: asyncio.Event | None = None  # cleared while paused
        self._running: set[asyncio.Future] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), daemon=True, name="cpu-sglang-http"
        )
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self.base_url

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._admitting = asyncio.Event()
            self._admitting.set()
            self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
        except Exception as e:  # noqa: BLE001 - re-raised by start(), in the caller's thread
            failure.append(e)
            ready.set()
            self._loop.close()
            return
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if self._loop is None or self._loop.is_closed():
            return
        self._abort_epoch += 1  # let a running generation end at its next step
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._worker.shutdown(wait=True, cancel_futures=True)

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/generate", self._generate)
        app.router.add_get("/health", self._health)
        app.router.add_get("/health_generate", self._health_generate)
        app.router.add_get("/get_model_info", self._model_info)
        app.router.add_get("/get_server_info", self._server_info)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_post("/update_weights_from_disk", self._update_weights_from_disk)
        app.router.add_post("/pause_generation", self._pause)
        app.router.add_post("/continue_generation", self._continue)
        app.router.add_route("*", "/flush_cache", self._flush_cache)
        app.router.add_post("/release_memory_occupation", self._memory_noop)
        app.router.add_post("/resume_memory_occupation", self._memory_noop)
        return app

    async def _run(self, fn: Callable, *args, **kwargs):
        """Run model work on the worker thread; pause waits for what this tracks."""

        def job():
            self.busy.set()
            try:
                return fn(*args, **kwargs)
            finally:
                self.busy.clear()

        future = asyncio.get_running_loop().run_in_executor(self._worker, job)
        self._running.add(future)
        try:
            return await future
        finally:
            self._running.discard(future)

    # -- generation ------------------------------------------------------------------------
    async def _generate(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
            prompt, params, options = self._parse_generate(body)
        except ValueError as e:  # a BadRequest, or a body that is no JSON
            return web.json_response({"error": {"message": str(e)}}, status=400)
        await self._admitting.wait()
        epoch = self._abort_epoch  # no await between admission and this: a pause sees us
        forced = self._forced_for(prompt)
        try:
            generation = await self._run(
                self.policy.generate,
                prompt,
                params,
                forced=forced,
                logprob_start_len=options["logprob_start_len"],
                aborted=lambda: self._abort_epoch != epoch,
            )
        except BadRequest as e:
            return web.json_response({"error": {"message": str(e)}}, status=400)
        self.finished[generation.finish_reason["type"]] += 1
        return web.json_response(self._generate_response(body, prompt, params, options, generation, started))

    def _forced_for(self, prompt: list[int]) -> list[int] | None:
        """Tokens to replay for this prompt instead of sampling: none here (a subclass's hook)."""
        return None

    def _parse_generate(self, body: dict[str, Any]) -> tuple[list[int], SamplingParams, dict[str, Any]]:
        """Validate a /generate body; what this server cannot honour is a BadRequest."""
        unknown = sorted(set(body) - GENERATE_FIELDS - SWITCHED_OFF)
        if unknown:
            raise BadRequest(f"unsupported /generate fields: {unknown}")
        for key in SWITCHED_OFF:
            if body.get(key):
                raise BadRequest(f"{key}={body[key]!r} is not supported on CPU")
        if body.get("input_ids") is not None:
            prompt = body["input_ids"]
            if not isinstance(prompt, list) or not all(isinstance(t, int) for t in prompt):
                raise BadRequest("input_ids must be one list of token ids (no batches)")
        elif isinstance(body.get("text"), str):
            prompt = self.policy.tokenizer.encode(body["text"], add_special_tokens=False)
        else:
            raise BadRequest("give input_ids (a list of ints) or text (a string)")
        return_logprob = bool(body.get("return_logprob", False))
        start = body.get("logprob_start_len")
        if not isinstance(start, int | None):
            raise BadRequest("logprob_start_len must be an int")
        options = {
            "return_logprob": return_logprob,
            # SGLang's default (-1): score only from the last prompt token on.
            "logprob_start_len": (len(prompt) - 1 if start in (None, -1) else start)
            if return_logprob
            else None,
            "return_text": bool(body.get("return_text_in_logprobs", False)),
        }
        return prompt, SamplingParams.parse(body.get("sampling_params")), options

    def _generate_response(self, body, prompt, params, options, generation: Generation, started) -> dict:
        meta: dict[str, Any] = {
            "id": body.get("rid") or uuid.uuid4().hex,
            "finish_reason": generation.finish_reason,
            "prompt_tokens": len(prompt),
            "completion_tokens": len(generation.output_ids),
            "cached_tokens": generation.cached_tokens,
            "weight_version": self.weight_version,
            "e2e_latency": time.perf_counter() - started,
        }
        if options["return_logprob"]:
            decode = self.policy.tokenizer.decode if options["return_text"] else (lambda _: None)
            start = options["logprob_start_len"]
            # none when aborted before the prefill (AReaL pausing generation for a weight update)
            inputs = generation.input_logprobs
            meta["input_token_logprobs"] = [] if inputs is None else [
                [lp, t, decode([t])] for lp, t in zip(inputs, prompt[start:], strict=True)
            ]
            meta["output_token_logprobs"] = [
                [lp, t, decode([t])]
                for lp, t in zip(generation.output_logprobs, generation.output_ids, strict=True)
            ]
        return {
            "text": self.policy.text(generation, params),
            "output_ids": generation.output_ids,
            "meta_info": meta,
        }

    # -- OpenAI's chat completions ------------------------------------------------------------
    async def _chat_completions(self, request: web.Request) -> web.Response:
        """POST /v1/chat/completions: render, generate (admitted, aborted and forced as
        /generate is), parse tool calls; answered in OpenAI's shape."""
        await asyncio.get_running_loop().run_in_executor(None, sglang_chat_api)
        try:
            body = await request.json()
            turn = self.chat.parse(body, self.policy)
        except ValueError as e:  # a BadRequest, or a body that is no JSON
            return web.json_response({"error": {"message": str(e)}}, status=400)
        await self._admitting.wait()
        epoch = self._abort_epoch  # no await between admission and this: a pause sees us
        try:
            prompt, generation = await self._run(
                self._chat_generate, turn, lambda: self._abort_epoch != epoch
            )
        except BadRequest as e:
            return web.json_response({"error": {"message": str(e)}}, status=400)
        self.finished[generation.finish_reason["type"]] += 1
        reply = self.chat.reply(turn, self.policy.text(generation, turn.params), generation.finish_reason)
        return web.json_response(self._chat_response(turn, prompt, generation, reply))

    def _chat_generate(self, turn: ChatTurn, aborted: Callable[[], bool]) -> tuple[list[int], Generation]:
        """On the worker: the prompt (the tokenizer is used by one thread) and its generation."""
        prompt = self.chat.render(turn, self.policy.tokenizer)
        return prompt, self.policy.generate(
            prompt, turn.params, forced=self._forced_for(prompt), aborted=aborted
        )

    def _chat_response(
        self, turn: ChatTurn, prompt: list[int], generation: Generation, reply: ChatReply
    ) -> dict:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.reasoning_content is not None:
            message["reasoning_content"] = reply.reasoning_content
        if reply.tool_calls is not None:
            message["tool_calls"] = [call.to_openai() for call in reply.tool_calls]
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": self._chat_logprobs(generation) if turn.request.logprobs else None,
            "finish_reason": reply.finish_reason,
            "matched_stop": reply.matched_stop,
        }
        completion_tokens = len(generation.output_ids)
        return {
            "id": turn.request.rid if isinstance(turn.request.rid, str) else uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": len(prompt),
                "completion_tokens": completion_tokens,
                "total_tokens": len(prompt) + completion_tokens,
            },
            "metadata": {"weight_version": self.weight_version},
        }

    def _chat_logprobs(self, generation: Generation) -> dict[str, Any]:
        """OpenAI's logprobs.content: each output token, its text and log-probability."""
        content = []
        for token_id, logprob in zip(generation.output_ids, generation.output_logprobs, strict=True):
            token = self.policy.tokenizer.decode([token_id])
            content.append(
                {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []}
            )
        return {"content": content}

    # -- control ---------------------------------------------------------------------------
    async def _pause(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        mode = body.get("mode") or "abort"
        if mode != "abort":
            return web.json_response(
                {"error": {"message": f"pause mode {mode!r} is not supported"}}, status=400
            )
        self._admitting.clear()
        await self._abort_running()
        return web.json_response({"message": "Generation paused successfully.", "status": "ok"})

    async def _continue(self, request: web.Request) -> web.Response:
        self._admitting.set()
        return web.json_response({"message": "Generation continued successfully.", "status": "ok"})

    async def _abort_running(self) -> None:
        """Abort every admitted request and wait until they have answered."""
        self._abort_epoch += 1
        if self._running:
            await asyncio.wait(set(self._running))

    async def _update_weights_from_disk(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("abort_all_requests"):
            await self._abort_running()
        try:
            await self._run(self.policy.load_weights, body["model_path"])
        except (KeyError, OSError, ValueError, RuntimeError) as e:  # as SGLang: success=false, HTTP 400
            return web.json_response(
                {"success": False, "message": f"Failed to update weights: {e!r}"}, status=400
            )
        self.weight_updates += 1
        if body.get("weight_version") is not None:
            self.weight_version = str(body["weight_version"])
        return web.json_response(
            {"success": True, "message": "Succeeded to update model weights.", "num_paused_requests": 0}
        )

    async def _flush_cache(self, request: web.Request) -> web.Response:
        await self._run(self.policy.prefixes.clear)
        return web.Response(text="Cache flushed.\n")

    async def _memory_noop(self, request: web.Request) -> web.Response:
        return web.json_response({"success": True, "message": "no-op on CPU"})

    # -- information -----------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response()

    async def _health_generate(self, request: web.Request) -> web.Response:
        params = SamplingParams(temperature=0.0, max_new_tokens=1)
        await self._run(self.policy.generate, [self.policy.tokenizer.eos_token_id], params)
        return web.Response()

    async def _model_info(self, request: web.Request) -> web.Response:
        config = self.policy.model.config
        return web.json_response(
            {
                "model_path": self.policy.model_path,
                "tokenizer_path": self.tokenizer_path,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": self.weight_version,
                "has_image_understanding": False,
                "has_audio_understanding": False,
                "model_type": config.model_type,
                "architectures": config.architectures,
            }
        )

    async def _server_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "model_path": self.model_path,
                "tokenizer_path": self.tokenizer_path,
                "served_model_name": self.served_model_name,
                "host": self.host,
                "port": self.port,
                "random_seed": self.random_seed,
                "context_length": self.policy.context_length,
                "skip_tokenizer_init": False,
                "weight_version": self.weight_version,
                "version": VERSION,
            }
        )

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.served_model_name,
                        "object": "model",
                        "owned_by": "sglang",
                        "root": self.model_path,
                        "max_model_len": self.policy.context_length,
                    }
                ],
            }
        )


def main(argv: list[str] | None = None, server_class: type[CPUSGLangServer] | None = None) -> None:
    """Serve until SIGTERM or SIGINT (`server_class`: a subclass, e.g. the tests' forcing one)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--tokenizer-path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--context-length", type=int)
    parser.add_argument("--served-model-name")
    parser.add_argument("--tool-call-parser", default=DEFAULT_TOOL_CALL_PARSER)
    parser.add_argument("--reasoning-parser")
    parser.add_argument("--chat-template", help="a Jinja chat template file for /v1/chat/completions")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch's intra-op threads (default: torch's own, one per core); on cores shared with "
        "other busy processes, 1 avoids threads waiting on each other at every operation",
    )
    # The rest of sglang.launch_server's flags (--tp-size, --dtype, --mem-fraction-static, ...)
    args, _ = parser.parse_known_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    server = (server_class or CPUSGLangServer)(
        args.model_path,
        args.host,
        args.port,
        tokenizer_path=args.tokenizer_path,
        random_seed=args.random_seed,
        context_length=args.context_length,
        served_model_name=args.served_model_name,
        tool_call_parser=args.tool_call_parser,
        reasoning_parser=args.reasoning_parser,
        chat_template=args.chat_template,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"serving on {server.start()}", flush=True)
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
