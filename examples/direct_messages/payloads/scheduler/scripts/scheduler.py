"""A self-scheduling executor: direct messages (``emit_messages`` with ``to``) and ``next_state``.

There are no edges in this bundle. Every message this script sends names its recipient:

* on the seeded ``init`` message it sends ``tick`` #1 **to itself** (``to`` = its own node id);
* on ``tick`` #n it records the tick in ``next_state`` and sends ``tick`` #n+1 to itself,
  until ``TOTAL_TICKS`` ticks have been processed;
* after the last tick it sends ``schedule_finished`` **to the sink node**, which completes
  the job.

The tick count survives between invocations only through ``next_state``, which the runtime
hands back as ``agent_state`` in ``MIRROR_NEURON_CONTEXT_FILE`` (each run gets a fresh
directory, so nothing on disk persists).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def read_json(env_name: str) -> Any:
    with open(os.environ[env_name], encoding="utf-8") as fh:
        return json.load(fh)


def main() -> int:
    total = int(os.environ.get("TOTAL_TICKS", "3"))
    sink = os.environ.get("SINK_NODE", "sink")
    me = os.environ["MIRROR_NEURON_AGENT_ID"]

    message = read_json("MIRROR_NEURON_MESSAGE_FILE")
    envelope, body = message["envelope"], message.get("body") or {}
    state = read_json("MIRROR_NEURON_CONTEXT_FILE").get("agent_state") or {}
    kind = envelope["type"]

    events: list[dict[str, Any]] = []
    emits: list[dict[str, Any]] = []
    if kind == "init":
        state = {"ticks": 0, "invocations": 1, "tick_senders": [], "job": body.get("job", "unnamed")}
        events.append({"type": "schedule_started", "payload": {"total_ticks": total}})
        emits.append({"type": "tick", "to": me, "body": {"tick": 1}})
    elif kind == "tick":
        tick = body["tick"]
        if tick != state["ticks"] + 1:
            print(f"tick {tick} out of order after {state['ticks']}", file=sys.stderr)
            return 1
        state = {
            **state,
            "ticks": tick,
            "invocations": state["invocations"] + 1,
            "tick_senders": [*state["tick_senders"], envelope["from"]],
        }
        events.append({"type": "tick_processed", "payload": {"tick": tick, "from": envelope["from"]}})
        if tick < total:
            emits.append({"type": "tick", "to": me, "body": {"tick": tick + 1}})
        else:
            emits.append(
                {
                    "type": "schedule_finished",
                    "to": sink,
                    "body": {
                        "job": state["job"],
                        "ticks": state["ticks"],
                        "invocations": state["invocations"],
                        "tick_senders": state["tick_senders"],
                    },
                }
            )
    else:
        print(f"unexpected message type {kind!r}", file=sys.stderr)
        return 1
    print(json.dumps({"next_state": state, "events": events, "emit_messages": emits}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
