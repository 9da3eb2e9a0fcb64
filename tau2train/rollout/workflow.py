"""The rollout workflow AReaL runs for every τ² episode (AReaL's proxy-mode agent contract).

AReaL calls `await workflow.run(data, base_url=..., api_key=..., http_client=...)` with a
dataset row: `{"task_id", "split"}` (a task of the configured domain's τ² split) or a row of
the AReaL-tau2-data RL file (its domain, file and line, snapshot: episode.scenario); the agent's calls go to `base_url` (AReaL's proxy in
front of the policy), the user simulator's to `econfig.user_llm_base_url`. The return value
is `{completion_id: reward}` (see rewards.py for the rule). Imports only tau2train's rollout,
schemas, records and compat, and tau2: this module runs inside AReaL's rollout workers.

tau2 is synchronous, so each episode runs in a thread of a pool sized for the rollout
concurrency (asyncio's default executor has a handful of threads and would serialise 256
rollouts); its LLM requests still run as coroutines on the caller's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

from tau2train.compat.areal import drop_episodes_alone
from tau2train.records.episode_failure import Failure
from tau2train.rollout import fast_env, tau2_data_dir
from tau2train.rollout.chat import Chat
from tau2train.rollout.episode import Episode, play, scenario
from tau2train.rollout.group_filter import record_episode_reward
from tau2train.rollout.lost_episodes import record_episode_end
from tau2train.rollout.rewards import record_domain_stats
from tau2train.rollout.shaping import Shaping
from tau2train.rollout.trajectories import write_run_info
from tau2train.schemas import NL_JUDGE_API_KEY_ENV, EnvConfig, RewardSpec, RunInfo, endpoint_model_name

logger = logging.getLogger("tau2train.rollout.workflow")

# Environment variable holding the user-simulator server's API key, if it wants one.
USER_LLM_API_KEY_ENV = "USER_LLM_API_KEY"

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def episode_pool(size: int) -> ThreadPoolExecutor:
    """The process-wide pool episodes run in, replaced by a larger one when a caller needs
    more threads (the old one finishes what it runs)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < size:
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="tau2-episode")
            _pool_size = size
        return _pool


_http_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def loop_http_client(loop: asyncio.AbstractEventLoop) -> httpx.AsyncClient:
    """One connection pool per event loop, shared by every episode's clients: building an
    HTTP client (its TLS context) costs ~20 ms, most of an episode's own overhead otherwise."""
    client = _http_clients.get(loop)
    if client is None or client.is_closed:
        client = _http_clients[loop] = DefaultAsyncHttpxClient()
    return client


class EpisodeDiscarded(RuntimeError):
    """The episode failed outside the policy's control; raised so AReaL leaves its trajectory
    out (training: that episode alone, tau2train.compat.areal.drop_episodes_alone)."""


class EpisodeTimedOut(EpisodeDiscarded, TimeoutError):
    """The episode ran past its time limit."""


class Tau2AgentWorkflow:
    """Plays one τ² episode per `run` and returns its per-completion rewards.

    Args:
        econfig: the τ² environment (EnvConfig or its dict form).
        gen_args: sampling arguments for the agent's completions (temperature, ...).
        timeout: seconds an episode may take; a slower one raises TimeoutError, and AReaL
            discards it.
        dump_dir: where trajectories go (`<run_dir>/generated`); None writes none.
        max_concurrent_episodes: threads for episodes (training passes
            rollout.max_concurrent_rollouts x gconfig.n_samples).
        agent_model: model name sent to the agent endpoint (AReaL's proxy ignores it).
        group_size: episodes of one task AReaL runs together (gconfig.n_samples): what a
            failed episode costs is counted per group (rollout/lost_episodes.py).
        min_episodes: in training (AReaL's rollout workers), the fewest episodes a group
            trains on (group_filter.min_episodes, at most group_size): a failed episode is
            dropped alone, and its group whole when fewer are left. None: not a training
            rollout.
        reward: what an episode earns (the reward group: RewardSpec or its dict form); None:
            tau2's own reward (reward=tau2), as evaluations score. Its terms are imported here.
    """

    def __init__(
        self,
        econfig: EnvConfig | dict | None = None,
        gen_args: dict | None = None,
        timeout: float = 600.0,
        dump_dir: str | None = None,
        max_concurrent_episodes: int = 256,
        agent_model: str = "policy",
        group_size: int = 1,
        min_episodes: int | None = None,
        reward: RewardSpec | dict | None = None,
    ):
        if econfig is None:
            econfig = EnvConfig()
        elif isinstance(econfig, dict):
            econfig = EnvConfig(**econfig)
        self.econfig = econfig
        tau2_data_dir.use(econfig)  # before anything loads τ² data in this process (AReaL's workers too)
        if econfig.fast_env:
            fast_env.install(econfig.domain)
        self.gen_args = dict(gen_args or {})
        self.timeout = timeout
        self.dump_dir = dump_dir
        self.max_concurrent_episodes = max_concurrent_episodes
        self.agent_model = agent_model
        self.group_size = group_size
        self.min_episodes = group_size if min_episodes is None else min_episodes
        self.shaping = Shaping.of(reward)
        if min_episodes is not None:
            drop_episodes_alone(EpisodeDiscarded)

    async def run(self, data: dict[str, Any], **extra_kwargs: Any) -> dict[str, float] | float:
        base_url = extra_kwargs.get("base_url") or os.getenv("OPENAI_BASE_URL")
        if not base_url:
            raise ValueError("Tau2AgentWorkflow needs base_url (AReaL's proxy) for the agent")
        try:
            episode = await self.play(
                data,
                base_url=base_url,
                api_key=extra_kwargs.get("api_key") or os.getenv("OPENAI_API_KEY") or "EMPTY",
                http_client=extra_kwargs.get("http_client"),
            )
        except TimeoutError:
            self.record_timeout(data)
            raise EpisodeTimedOut(f"task {data.get('task_id')}: ran past {self.timeout} s") from None
        record_episode_end(episode.failure, self.group_size, self.min_episodes)
        if episode.discard_reason:
            raise EpisodeDiscarded(
                f"task {episode.info.task_id}: {episode.discard_reason}; trajectory discarded"
            )
        info = episode.info
        record_episode_reward(info.shaped_reward, info.reward)  # for the group filter (group_filter.py)
        record_domain_stats(info.domain or self.econfig.domain, info.reward, info.shaped_reward)
        return info.completion_rewards or float(info.shaped_reward)

    async def play(
        self,
        data: dict[str, Any],
        base_url: str,
        api_key: str,
        http_client=None,
    ) -> Episode:
        """Play the episode `data` names, record it, and return it (no discarding here)."""
        split = data.get("split", "train")
        loop = asyncio.get_running_loop()
        shared = loop_http_client(loop)
        cancelled = threading.Event()
        agent_client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, http_client=http_client or shared, max_retries=0
        )
        agent_chat = Chat(
            agent_client, loop, self.agent_model, self.gen_args, role="agent", cancelled=cancelled
        )
        user_chat = None
        if not self.econfig.solo_mode:
            # a mixed run's rows name their domain, which may have a user simulator of its own
            user_url, user_llm = self.econfig.user_sim_of(data.get("domain") or self.econfig.domain)
            user_client = AsyncOpenAI(
                base_url=user_url,
                api_key=os.getenv(USER_LLM_API_KEY_ENV) or "EMPTY",
                max_retries=self.econfig.user_llm_max_retries,
                timeout=self.econfig.user_llm_timeout,
                http_client=shared,
            )
            user_chat = Chat(
                user_client,
                loop,
                endpoint_model_name(user_llm),
                dict(self.econfig.user_llm_args or {}),
                role="user",
                cancelled=cancelled,
                outage_s=self.econfig.user_llm_outage_s,
            )

        judge_chat = self._judge_chat(loop, shared, cancelled)

        def play_and_record() -> Episode:
            # in the thread: a row's first episode on a snapshot loads it (~0.4 s for airline)
            scene = scenario(data, self.econfig)
            episode = play(scene, split, self.econfig, agent_chat, user_chat, judge_chat, self.shaping)
            if self.dump_dir:
                write_run_info(self.dump_dir, episode.info)
            return episode

        future = loop.run_in_executor(episode_pool(self.max_concurrent_episodes), play_and_record)
        # An episode stopped (timed out, or its task cancelled as the run ends) ends in its
        # thread with EpisodeCancelled that nobody awaits any more: retrieved here, it is not
        # printed as "Future exception was never retrieved" with every traceback.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            return await self.within_time_limit(future, user_chat)
        except TimeoutError:
            cancelled.set()  # the episode's thread stops at its next LLM call
            logger.error("task %s exceeded %ss; trajectory discarded", data["task_id"], self.timeout)
            raise
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def within_time_limit(self, future: asyncio.Future, user_chat: Chat | None) -> Episode:
        """The episode, or TimeoutError once it has run `timeout` seconds, not counting the
        time it waited for a user simulator that was down (training pauses, not its episodes)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            paused = user_chat.outage.paused() if user_chat else 0.0
            left = self.timeout + paused - (loop.time() - start)
            if left <= 0:
                raise TimeoutError
            done, _ = await asyncio.wait({future}, timeout=left)
            if done:
                return future.result()

    def record_timeout(self, data: dict[str, Any]) -> None:
        """A timed-out episode's record and stats."""
        record_episode_end(Failure.TIMEOUT, self.group_size, self.min_episodes)
        if self.dump_dir:
            write_run_info(self.dump_dir, RunInfo(
                task_id=str(data.get("task_id")), split=data.get("split", "train"),
                domain=data.get("domain") or self.econfig.domain, duration=self.timeout,
                error=f"the episode ran past trainer.episode_timeout={self.timeout} s",
                failure=Failure.TIMEOUT.value,
            ))

    def _judge_chat(self, loop, http_client, cancelled: threading.Event) -> Chat | None:
        """The episode's NL-assertion judge (econfig.nl_judge; None when none is set), sampling
        as τ²-bench 1.0's does (tau2.config.DEFAULT_LLM_NL_ASSERTIONS_ARGS)."""
        from tau2.config import DEFAULT_LLM_NL_ASSERTIONS_ARGS

        judge = self.econfig.nl_judge
        if not judge.base_url:
            return None
        client = AsyncOpenAI(base_url=judge.base_url, api_key=os.getenv(NL_JUDGE_API_KEY_ENV) or "EMPTY",
                             max_retries=judge.max_retries, timeout=judge.timeout, http_client=http_client)
        return Chat(client, loop, endpoint_model_name(judge.model), dict(DEFAULT_LLM_NL_ASSERTIONS_ARGS),
                    role="judge", cancelled=cancelled)

