"""The executor agent: lease a pool slot, run the node's command, turn its output into actions.

The order of events and actions is the original's (§6, §8.1), because monitors and
tests read them: ``executor_lease_requested``, ``executor_lease_acquired``,
``executor_lease_released`` (always), then ``sandbox_job_completed`` (or the new
``sandbox_job_failed``), the default output emit, ``complete_job`` from config, then the
structured-stdout events, emits and completion. Where the command runs is decided by
:mod:`mirror_neuron.execution`; this module only speaks to the runtime.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any, ClassVar, cast

from .._time import now_iso
from ..errors import ExecutionError
from ..execution.errors import LeaseError
from ..execution.execute import Executor, Invocation, Outcome
from ..execution.output import InvalidOutput, StructuredOutput, is_reserved_event, read_structured
from ..execution.pools import Lease, LeaseManager
from ..execution.result import redact_value
from ..execution.settings import ExecutorSettings
from ..names import text_problem
from .base import Agent, AgentContext, AgentError

if TYPE_CHECKING:
    from ..bundle.model import Node
    from ..messages import Message

RESULT_HEADERS = {"schema_ref": "com.mirrorneuron.executor.result", "schema_version": "1.0.0"}


class ExecutorAgent(Agent):
    """Runs ``config.command`` for every message (see :mod:`mirror_neuron.execution`)."""

    is_async: ClassVar[bool] = True

    def __init__(self, node: Node, ctx: AgentContext) -> None:
        super().__init__(node, ctx)
        self.runs = 0
        self.agent_state: Any = {}
        self.last_output_payload: Any = None
        self.last_result: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._executor: Executor | None = None
        self._config_error: ExecutionError | None = None
        try:
            self.settings = ExecutorSettings.from_config(node.config, ctx.config.policy)
        except ExecutionError as exc:  # reported when a message arrives, like any run failure
            self.settings = ExecutorSettings()
            self._config_error = exc

    # -- handling --------------------------------------------------------------------

    async def handle_async(self, message: Message) -> None:
        executor = self._get_executor()
        s = self.settings
        body = {} if message.body is None else message.body
        stored = await self._stored_run(message, body)
        if stored is not None:  # finished before a crash: re-emit, do not run again
            self.ctx.event(
                "executor_output_replayed",
                {"reason": "agent_recovery", "agent_id": self.node.node_id, "message_id": message.message_id},
            )
            secrets = executor.secrets(self._invocation(message))
            self._apply(
                stored["result"], _readable(read_structured(stored["stdout"])), secrets, body, message
            )
            return
        if self.runs == 0 and s.startup_delay_ms > 0:
            await asyncio.sleep(s.startup_delay_ms / 1000.0)
        leases = self._leases()
        self.ctx.event("executor_lease_requested", {"pool": s.pool, "slots": s.pool_slots})
        try:
            lease = await leases.acquire(s.pool, s.pool_slots, self._lease_metadata(), owner=self.ctx.job_id)
        except LeaseError as exc:
            self._failed(str(exc))
            raise AgentError(str(exc), {"error": str(exc), "attempts": 0}) from exc
        self.ctx.event(
            "executor_lease_acquired",
            {
                "lease_id": lease.lease_id,
                "pool": lease.pool,
                "slots": lease.slots,
                "queue_wait_ms": lease.queue_wait_ms,
            },
        )
        outcome: Outcome | None = None
        setup_error: ExecutionError | None = None
        try:
            outcome = await executor.execute(self._invocation(message))
        except ExecutionError as exc:
            setup_error = exc
        finally:
            leases.release(lease)
            self.ctx.event(
                "executor_lease_released",
                {"lease_id": lease.lease_id, "pool": lease.pool, "slots": lease.slots},
            )
        if outcome is None or not outcome.ok:
            raise self._failure(outcome, setup_error, lease, message=message)
        found = read_structured(outcome.run.stdout, truncated=_stdout_cut(outcome, s.max_output_bytes))
        if isinstance(found, InvalidOutput):  # fail the run: a job waiting on this output would never end
            self.ctx.event(
                "executor_output_invalid",
                {"sandbox_name": outcome.result["sandbox_name"], "reason": found.reason},
            )
            raise self._failure(outcome, None, lease, error=found.reason, message=message)
        result = {**outcome.result, "attempts": outcome.attempts, "lease": lease.to_dict()}
        save = getattr(self.ctx, "save_run", None)
        if save is not None:  # durable before anything is emitted from it
            await save(
                {
                    "message_id": message.message_id,
                    "input": body,
                    "result": result,
                    "stdout": outcome.run.stdout,
                }
            )
        self._log(message, outcome, None)
        self._apply(result, _readable(found), outcome.secrets, body, message)

    def _log(self, message: Message, outcome: Outcome | None, error: str | None) -> None:
        """Keep the run's output for ``mn job logs`` (texts are redacted already)."""
        log = getattr(self.ctx, "log_run", None)
        if log is None:
            return
        entry: dict[str, Any] = {"message_id": message.message_id, "ok": error is None, "error": error}
        if outcome is not None:
            run = outcome.run
            entry.update(
                sandbox_name=outcome.result.get("sandbox_name"),
                exit_code=run.exit_code,
                attempts=outcome.attempts,
                duration_ms=round(run.duration_ms, 1),
                stdout=run.stdout,
                stderr=run.stderr,
            )
        entry["finished_at"] = now_iso()
        log(entry)

    async def _stored_run(self, message: Message, body: Any) -> dict[str, Any] | None:
        """The stored run of this very message (same id and input), if the job is being recovered."""
        load = getattr(self.ctx, "saved_run", None)
        stored = await load() if load is not None else None
        if (
            stored
            and stored.get("message_id") == message.message_id
            and stored.get("input") == _json_safe(body)
        ):
            return cast("dict[str, Any]", stored)
        return None

    def _apply(
        self,
        result: dict[str, Any],
        structured: StructuredOutput | None,
        secrets: tuple[str, ...],
        body: Any,
        message: Message,
    ) -> None:
        """A successful run's effects, in the original's order (events, default emit, stdout actions)."""
        lease = result.get("lease") or {}
        output = {"agent_id": self.node.node_id, "sandbox": result, "input": body}
        self.runs += 1
        if structured is not None and structured.has_next_state:
            self.agent_state = _json_safe(redact_value(structured.next_state, secrets))
        # Kept JSON-safe from here on, so snapshots (taken on every commit) need no conversion.
        self.last_output_payload, self.last_result, self.last_error = (
            _json_safe(output),
            _json_safe(result),
            None,
        )
        self.ctx.event(
            "sandbox_job_completed",
            {
                "sandbox_name": result["sandbox_name"],
                "exit_code": result["exit_code"],
                "attempts": result.get("attempts"),
                "lease_id": lease.get("lease_id"),
                "pool": lease.get("pool"),
            },
        )
        self._default_actions(output, message)
        if structured is not None:
            self._structured_actions(structured, output, message, secrets)

    def _default_actions(self, output: dict[str, Any], incoming: Message | None) -> None:
        if self.settings.output_message_type is not None:
            self.ctx.emit(
                self.settings.output_message_type, output, incoming, cls="event", headers=dict(RESULT_HEADERS)
            )
        if self.settings.complete_job:
            self.ctx.complete_job(output)

    def _structured_actions(
        self, out: StructuredOutput, output: dict[str, Any], incoming: Message, secrets: tuple[str, ...]
    ) -> None:
        for event_type, payload in out.events:
            refused = _event_name_problem(event_type)
            if refused is not None:  # a forged job_completed or dead_letter misleads everyone
                self.ctx.event("executor_event_rejected", {"type": event_type, "reason": refused})
                continue
            self.ctx.event(event_type, redact_value(payload, secrets))
        for emit in out.emits:
            refused = text_problem(emit.type)
            if refused is not None:
                reason = f"not a valid message type: {refused}"
                self.ctx.event("executor_message_rejected", {"type": emit.type, "reason": reason})
                continue
            body = redact_value(emit.body, secrets)
            options = redact_value(emit.options, secrets)
            if emit.to is not None:
                self.ctx.emit_to(emit.to, emit.type, body, incoming, **options)
            else:
                self.ctx.emit(emit.type, body, incoming, **options)
        if out.complete == "value":
            self.ctx.complete_job(redact_value(out.completion, secrets))
        elif out.complete == "output":
            self.ctx.complete_job(output)

    def _failure(
        self,
        outcome: Outcome | None,
        setup_error: ExecutionError | None,
        lease: Lease,
        error: str | None = None,
        *,
        message: Message,
    ) -> AgentError:
        if outcome is None:
            text = str(setup_error)
            details: dict[str, Any] = {"error": text, "attempts": 1}
            name, exit_code, attempts = None, None, 1
        else:
            text = error or outcome.error or "command failed"
            details = dict(outcome.details)
            name, exit_code, attempts = (
                outcome.result["sandbox_name"],
                outcome.run.exit_code,
                outcome.attempts,
            )
            self.last_result = _json_safe({**outcome.result, "attempts": attempts, "lease": lease.to_dict()})
        self.ctx.event(
            "sandbox_job_failed",
            {
                "sandbox_name": name,
                "exit_code": exit_code,
                "attempts": attempts,
                "lease_id": lease.lease_id,
                "pool": lease.pool,
                "error": text,
            },
        )
        self._failed(text)
        self._log(message, outcome, text)
        return AgentError(text, details)

    def _failed(self, message: str) -> None:
        self.runs += 1
        self.last_error = message

    # -- recovery and state ----------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "agent_state": self.agent_state,
            "last_output_payload": self.last_output_payload,
            "last_result": self.last_result,
            "last_error": self.last_error,
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        runs = state.get("runs", 0)
        self.runs = runs if isinstance(runs, int) and not isinstance(runs, bool) else 0
        self.agent_state = _json_safe(state.get("agent_state", {}))
        self.last_output_payload = state.get("last_output_payload")
        self.last_result = state.get("last_result")
        self.last_error = state.get("last_error")

    def inspect_state(self) -> dict[str, Any]:
        # The last output (its input and full stdout again) is left to the recovery state.
        running = len(self._executor.tracker.running) if self._executor is not None else 0
        return {
            "runs": self.runs,
            "agent_state": self.agent_state,
            "last_result": self.last_result,
            "last_error": self.last_error,
            "running_commands": running,
        }

    async def stop(self) -> None:
        """Kill running commands (their whole process groups); idempotent."""
        if self._executor is not None:
            await self._executor.stop()

    # -- helpers ---------------------------------------------------------------------

    def _get_executor(self) -> Executor:
        if self._config_error is not None:
            raise AgentError(str(self._config_error), {"error": str(self._config_error), "attempts": 0})
        if self._executor is None:
            try:
                self._executor = Executor(self.settings, policy=self.ctx.config.policy)
            except ExecutionError as exc:
                raise AgentError(str(exc), {"error": str(exc), "attempts": 0}) from exc
        return self._executor

    def _leases(self) -> LeaseManager:
        leases = self.ctx.services.get("leases")
        if leases is None:
            leases = self.ctx.services["leases"] = LeaseManager.from_config(self.ctx.config)
        return leases

    def _lease_metadata(self) -> dict[str, Any]:
        return {"job_id": self.ctx.job_id, "agent_id": self.node.node_id, "node": self.ctx.config.node_name}

    def _invocation(self, message: Message) -> Invocation:
        return Invocation(
            job_id=self.ctx.job_id,
            agent_id=self.node.node_id,
            message=message,
            agent_type=self.node.agent_type,
            template_type=self.node.type,
            agent_state=self.agent_state,
            payloads_path=self.ctx.payloads_path,
            temp_dir=self.ctx.config.temp_dir,
            node_name=self.ctx.config.node_name,
            invocation=getattr(self.ctx, "invocation", self.runs + 1) or self.runs + 1,
        )


def _readable(found: StructuredOutput | InvalidOutput | None) -> StructuredOutput | None:
    """The protocol object of a run's stdout, when there is one it can act on."""
    return found if isinstance(found, StructuredOutput) else None


def _event_name_problem(name: str) -> str | None:
    """Why a script may not record an event of this type, or ``None``."""
    if is_reserved_event(name):
        return "event names of the runtime's own events are reserved"
    problem = text_problem(name)
    return None if problem is None else f"not a valid event name: {problem}"


def _stdout_cut(outcome: Outcome, cap: int) -> bool:
    """Whether the runner cut stdout off at its cap (its head is kept, exactly ``cap`` bytes)."""
    run = outcome.run
    return run.truncated and len(run.stdout.encode("utf-8", errors="surrogatepass")) >= cap


def _json_safe(value: Any) -> Any:
    """Bytes bodies (octet-stream) as text: UTF-8 when possible, else base64."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
