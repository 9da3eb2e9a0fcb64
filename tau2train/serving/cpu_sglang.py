"""The CPU inference server: SGLang's native HTTP protocol over a small Hugging Face model.

SGLang needs a GPU; AReaL's rollout client (areal.engine.sglang_remote.RemoteSGLangEngine)
only needs SGLang's HTTP API. This server answers that API with a Hugging Face causal LM on
CPU (float32, no grad, KV cache): real sampling, real per-token log-probabilities and real
weight reloads, so AReaL's trainer runs end to end without a GPU. It is tau2train's inference
backend for models small enough for a CPU (allocation=cpu_*: the miniature recipe's tiny
Qwen3, tau2train.serving.tiny_qwen) and the tests' policy server; never a backend for
reported numbers.

Endpoints (the subset AReaL 1.0.4 uses, answered in SGLang's shapes):

    POST /generate                  input_ids (or text), sampling_params, return_logprob,
                                    logprob_start_len, return_text_in_logprobs, rid
    GET  /health, /health_generate  liveness; one real 1-token generation
    GET  /get_model_info, /get_server_info, /v1/models
    POST /update_weights_from_disk  {"model_path", "abort_all_requests", "weight_version"}
    POST /pause_generation          aborts in-flight requests, holds new ones until ...
    POST /continue_generation
    GET|POST /flush_cache           nothing cached across requests: a no-op
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

A subclass may replay given tokens instead of sampling (`_forced_for`): the tests' forcing
server does (tests/helpers/cpu_sglang.py); this one always samples.

One worker thread runs all model work (generation and weight loads), in arrival order; the
HTTP side stays responsive meanwhile. In-process:

    server = CPUSGLangServer(model_path); server.start(); ... server.stop()

or as a process, accepting (and ignoring) the other sglang.launch_server flags AReaL passes:

    python -m tau2train.serving.cpu_sglang --model-path DIR --host 127.0.0.1 --port 30000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from aiohttp import web

VERSION = "cpu-sglang (tau2train CPU inference server)"
GREEDY_EPS = 1e-6  # SGLang samples greedily below this temperature
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


class Policy:
    """The model and tokenizer, and generation on CPU. Not thread-safe: one caller at a time."""

    def __init__(self, model_path: str, tokenizer_path: str, seed: int, context_length: int | None):
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

    @staticmethod
    def _load(path: str):
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def load_weights(self, path: str) -> None:
        """Load a checkpoint into the live model; raises if its tensors do not fit it."""
        fresh = self._load(path)
        self.model.load_state_dict(fresh.state_dict(), strict=True)
        self.model_path = path

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

        out = self.model(
            input_ids=torch.tensor([prompt]), use_cache=True, logits_to_keep=len(prompt) - first_scored + 1
        )
        logprobs = torch.log_softmax(out.logits[0].float() / params.scale, dim=-1)
        input_logprobs = self._input_logprobs(prompt, logprobs[:-1], first_scored, logprob_start_len)
        step_logprobs, past = logprobs[-1], out.past_key_values
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
        return Generation(output_ids, output_logprobs, finish, input_logprobs)

    def _replay(self, prompt, forced, params, budget, first_scored, logprob_start_len) -> Generation:
        """The forced tokens with their teacher-forced log-probabilities (one forward pass).

        They finish as "stop" when the last is a stop token within the budget, else as
        "length" (also when a forced list of ids simply ends without one).
        """
        ids = prompt + forced
        out = self.model(input_ids=torch.tensor([ids]), logits_to_keep=len(ids) - first_scored + 1)
        logprobs = torch.log_softmax(out.logits[0].float() / params.scale, dim=-1)
        n_input = len(prompt) - first_scored
        input_logprobs = self._input_logprobs(prompt, logprobs[:n_input], first_scored, logprob_start_len)
        output_logprobs = [float(logprobs[n_input + i, t]) for i, t in enumerate(forced)]
        stops = set() if params.ignore_eos else self.eos_ids | set(params.stop_token_ids)
        if forced and forced[-1] in stops and len(forced) < budget:
            finish = {"type": "stop", "matched": forced[-1]}
        else:
            finish = {"type": "length", "length": budget}
        return Generation(forced, output_logprobs, finish, input_logprobs)

    @staticmethod
    def _input_logprobs(prompt, logprobs, first_scored, logprob_start_len) -> list[float | None] | None:
        if logprob_start_len is None:
            return None
        scored = [float(logprobs[i, t]) for i, t in enumerate(prompt[first_scored:])]
        return [None] * (first_scored - logprob_start_len) + scored

    @staticmethod
    def _sample(logprobs: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> int:
        """Greedy, or a draw from the top-k/top-p truncation of exp(logprobs)."""
        if params.greedy:
            return int(torch.argmax(logprobs))
        probs = logprobs.exp()
        k = params.top_k if 0 < params.top_k < probs.numel() else probs.numel()
        if k == probs.numel() and params.top_p >= 1.0:
            return int(torch.multinomial(probs, 1, generator=generator))
        top, order = torch.topk(probs, k)  # descending
        if params.top_p < 1.0:
            # The smallest prefix whose mass reaches top_p (the first token always), measured
            # as SGLang's torch sampler does: on the top-k-truncated mass, not renormalised.
            top = top.masked_fill((torch.cumsum(top, 0) - top) > params.top_p, 0.0)
        return int(order[torch.multinomial(top, 1, generator=generator)])

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


class CPUSGLangServer:
    """The HTTP server, on its own event loop in a background thread.

    `start()` blocks until it listens and returns `base_url`; `address` is the "host:port"
    form AReaL's engines take (`initialize(addr=...)`, AREAL_LLM_SERVER_ADDRS). What tests
    may watch: `finished` counts answered /generate requests by finish type ("stop",
    "length", "abort"), `weight_updates` counts successful reloads, and `busy` is set while
    the worker runs model work (to pause a generation mid-way).
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
    ):
        self.model_path = str(model_path)
        self.tokenizer_path = str(tokenizer_path or model_path)
        self.host = host
        self.port = port
        self.served_model_name = served_model_name or self.model_path
        self.random_seed = random_seed
        self.policy = Policy(self.model_path, self.tokenizer_path, random_seed, context_length)
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
            "cached_tokens": 0,
            "weight_version": self.weight_version,
            "e2e_latency": time.perf_counter() - started,
        }
        if options["return_logprob"]:
            decode = self.policy.tokenizer.decode if options["return_text"] else (lambda _: None)
            start = options["logprob_start_len"]
            meta["input_token_logprobs"] = [
                [lp, t, decode([t])] for lp, t in zip(generation.input_logprobs, prompt[start:], strict=True)
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
    # The rest of sglang.launch_server's flags (--tp-size, --dtype, --mem-fraction-static, ...)
    args, _ = parser.parse_known_args(argv)
    server = (server_class or CPUSGLangServer)(
        args.model_path,
        args.host,
        args.port,
        tokenizer_path=args.tokenizer_path,
        random_seed=args.random_seed,
        context_length=args.context_length,
        served_model_name=args.served_model_name,
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"serving on {server.start()}", flush=True)
    stopping.wait()
    server.stop()


if __name__ == "__main__":
    main()
