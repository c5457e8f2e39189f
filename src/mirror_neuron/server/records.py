"""Job records as REST clients see them: without this host's private paths.

A stored record names the bundle folder (``manifest_ref.job_path`` / ``manifest_path``:
for an upload, the server's private upload folder) and the runtime's control socket
(``control``). Neither is any use to a remote client, and both help an attacker: one
used the upload path to name an uploaded script as a host program. The local CLI reads
the store directly and still shows them.
"""

from __future__ import annotations

from typing import Any

#: ``manifest_ref`` keys holding host paths; kept as ``null`` so the record's shape stays.
PRIVATE_REF_KEYS = ("job_path", "manifest_path")
#: Top-level keys dropped from every record.
PRIVATE_KEYS = ("control",)
#: The fields of a record that job lists show (small, and none private).
SUMMARY_KEYS = (
    "job_id",
    "status",
    "graph_id",
    "job_name",
    "submitted_at",
    "updated_at",
    "heartbeat_at",
    "node",
    "agent_count",
    "daemon",
    "orphaned",
)


def job_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The :data:`SUMMARY_KEYS` that ``record`` has: what a job list shows of it."""
    return {key: record[key] for key in SUMMARY_KEYS if key in record}


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``record`` without host paths (the stored record is left alone)."""
    public = {k: v for k, v in record.items() if k not in PRIVATE_KEYS}
    ref = public.get("manifest_ref")
    if isinstance(ref, dict):
        public["manifest_ref"] = {**ref, **{key: None for key in PRIVATE_REF_KEYS if key in ref}}
    return public
