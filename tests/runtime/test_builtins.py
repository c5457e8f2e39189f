"""Built-in agents (router, aggregator, sensor) against a recording context (§2.2–2.4)."""

from __future__ import annotations

from typing import Any

from mirror_neuron.agents import AggregatorAgent, RouterAgent, SensorAgent
from mirror_neuron.bundle.model import Node
from mirror_neuron.messages import Message


class Recorder:
    """An AgentContext that records what the agent asked for."""

    def __init__(self) -> None:
        self.emits: list[tuple[str, Any, dict[str, Any]]] = []
        self.events: list[tuple[str, Any]] = []
        self.completions: list[Any] = []

    def emit(self, type: str, body: Any, incoming: Message | None, **opts: Any) -> int:
        self.emits.append((type, body, opts))
        return 1

    def emit_to(self, node_id: str, type: str, body: Any, incoming: Message | None, **opts: Any) -> None:
        self.emits.append((f"{node_id}:{type}", body, opts))

    def event(self, type: str, payload: Any = None) -> None:
        self.events.append((type, payload))

    def complete_job(self, result: Any) -> None:
        self.completions.append(result)


def node(kind: str, **config: Any) -> Node:
    return Node(node_id=f"{kind}_1", agent_type=kind, kind=kind, type="generic", config=config)


def msg(body: Any, type: str = "result", **kw: Any) -> Message:
    return Message(type, body, job_id="j", sender="w", to="x", **kw)


def test_router_rewrites_the_type_with_emit_type_and_keeps_the_body() -> None:
    ctx = Recorder()
    agent = RouterAgent(node("router", emit_type="research_request"), ctx)
    agent.handle(msg({"a": 1}, type="init"))
    assert ctx.emits == [("research_request", {"a": 1}, {})]
    assert agent.snapshot_state()["forwarded"] == 1


def test_router_without_emit_type_keeps_the_incoming_type() -> None:
    ctx = Recorder()
    RouterAgent(node("router"), ctx).handle(msg("text", type="init"))
    assert ctx.emits == [("init", "text", {})]


def test_aggregator_complete_after_two_emits_the_aggregate_without_completing() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_after=2, output_message_type="collected"), ctx)
    agent.handle(msg({"v": 1}))
    assert ctx.emits == [] and ctx.events == [("aggregator_received", {"count": 1})]
    agent.handle(msg({"v": 2}))
    [(mtype, result, opts)] = ctx.emits
    assert mtype == "collected"
    assert result == {"messages": [{"v": 1}, {"v": 2}], "count": 2, "last_message": {"v": 2}}
    assert opts["cls"] == "event"
    assert opts["headers"] == {"schema_ref": "com.mirrorneuron.aggregator.result", "schema_version": "1.0.0"}
    assert ctx.completions == []  # output_message_type present → complete_job defaults to false


def test_aggregator_complete_after_three_completes_on_the_third() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_after=3), ctx)
    for v in (1, 2):
        agent.handle(msg({"v": v}))
    assert ctx.completions == []
    agent.handle(msg({"v": 3}))
    assert ctx.completions == [
        {"messages": [{"v": 1}, {"v": 2}, {"v": 3}], "count": 3, "last_message": {"v": 3}}
    ]


def test_aggregator_counts_distinct_results_from_the_same_agent() -> None:
    # The original de-duplicated by body.agent_id and dropped these; they are distinct results.
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_after=2), ctx)
    agent.handle(msg({"agent_id": "worker", "chunk": 1}))
    agent.handle(msg({"agent_id": "worker", "chunk": 2}))
    assert [r["count"] for r in ctx.completions] == [2]


def test_aggregator_ignores_a_replayed_message() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_after=2), ctx)
    first = msg({"agent_id": "worker", "chunk": 1})
    agent.handle(first)
    agent.handle(first)  # the same message delivered again (replay after recovery)
    assert ctx.completions == []
    assert ctx.events[-1] == (
        "aggregator_duplicate_ignored",
        {"message_id": first.message_id, "agent_id": "worker"},
    )
    restored = AggregatorAgent(node("aggregator", complete_after=2), Recorder())
    restored.restore_state(agent.snapshot_state())
    restored.restore_log(agent.log_entries())
    restored.handle(first)
    assert restored.ctx.completions == []  # type: ignore[attr-defined]


def test_aggregator_complete_on_message_completes_every_time_after() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_on_message=True), ctx)
    agent.handle(msg(None))
    agent.handle(msg({"x": 1}))
    assert [c["count"] for c in ctx.completions] == [1, 2]
    assert ctx.completions[0]["messages"] == [{}]  # a null body is collected as {}


def test_aggregator_explicit_complete_job_with_output_type_does_both() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(
        node("aggregator", complete_on_message=True, output_message_type="o", complete_job=True), ctx
    )
    agent.handle(msg({"x": 1}))
    assert len(ctx.emits) == 1 and len(ctx.completions) == 1


def test_aggregator_ignores_a_non_positive_complete_after() -> None:
    ctx = Recorder()
    agent = AggregatorAgent(node("aggregator", complete_after=0), ctx)
    agent.handle(msg({"x": 1}))
    assert ctx.completions == []


def test_sensor_emits_sensor_ready_and_records_observations() -> None:
    ctx = Recorder()
    agent = SensorAgent(node("sensor"), ctx)
    agent.handle(msg("hello", headers={"h": "1"}))
    assert ctx.events == [("sensor_observed", {"count": 1})]
    assert ctx.emits == [("sensor_ready", "hello", {"cls": "event"})]
    assert ctx.completions == []  # complete_job defaults to false


def test_sensor_completes_after_n_when_asked() -> None:
    ctx = Recorder()
    agent = SensorAgent(node("sensor", complete_after=2, complete_job=True, output_message_type="seen"), ctx)
    agent.handle(msg("one"))
    assert ctx.completions == []
    agent.handle(msg("hello"))
    assert ctx.completions == [{"count": 2, "last_message": "hello"}]
    assert [e[0] for e in ctx.emits] == ["seen", "seen"]


def test_aggregator_snapshots_stay_small_and_the_log_is_saved_once() -> None:
    agent = AggregatorAgent(node("aggregator", complete_after=1000), Recorder())
    for i in range(3):
        agent.handle(msg({"i": i}))
    assert "messages" not in agent.snapshot_state()
    first = agent.unsaved_log()
    assert [pos for pos, _ in first] == [1, 2, 3]
    assert agent.unsaved_log() == []  # nothing new
    agent.handle(msg({"i": 3}))
    assert [(pos, e["body"]) for pos, e in agent.unsaved_log()] == [(4, {"i": 3})]
    copy = AggregatorAgent(node("aggregator", complete_after=1000), Recorder())
    copy.restore_state(agent.snapshot_state())
    copy.restore_log(agent.log_entries())
    assert copy.messages == agent.messages and copy.seen == agent.seen
