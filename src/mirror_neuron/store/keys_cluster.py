"""The Redis keys and Lua scripts of job leases and the node registry (:mod:`.ownership`).

The key names are methods of :class:`ClusterKeys`, which :class:`~.keys.Keys` inherits;
the layout table is in :mod:`.keys`. Every script reads the server's clock
(``redis.call('TIME')``, allowed since Redis replicates a script's effects), so nodes on
different machines agree on expiry without synchronised clocks. Times are whole
milliseconds.

A lease is a hash ``{node, epoch, expires}`` (``expires``: server milliseconds) that stays
after it expired, so :meth:`~.ownership.Ownership.get_lease` can report it; the job's epoch
counter is a separate string that only :meth:`~.redis.RedisStore.delete_job` removes, so a
released lease's next claim still gets the next epoch.
"""

from __future__ import annotations

__all__ = ["CLUSTER_SCRIPTS", "FENCE", "LEASE_SUFFIX", "ClusterKeys"]

#: What :meth:`ClusterKeys.lease` puts after ``<ns>:job:<id>`` (also used inside a script).
LEASE_SUFFIX = ":lease"


class ClusterKeys:
    """Key names of leases and nodes, for a class with a ``namespace`` (:class:`~.keys.Keys`)."""

    __slots__ = ()
    namespace: str

    @property
    def prefix(self) -> str:
        return f"{self.namespace}:" if self.namespace else ""

    def epoch(self, job_id: str) -> str:
        """String: the job's lease epoch counter (missing: 0, never claimed)."""
        return f"{self.prefix}job:{job_id}:epoch"

    def lease(self, job_id: str) -> str:
        """Hash: the job's lease, ``node``, ``epoch`` and ``expires`` (server milliseconds)."""
        return f"{self.prefix}job:{job_id}{LEASE_SUFFIX}"

    @property
    def nodes(self) -> str:
        """Hash: node name → its info (JSON)."""
        return f"{self.prefix}nodes"

    @property
    def nodes_seen(self) -> str:
        """Hash: node name → ``<last heartbeat ms> <ttl ms>``."""
        return f"{self.prefix}nodes:seen"

    @property
    def nodes_drain(self) -> str:
        """Set: names of the nodes asked to drain."""
        return f"{self.prefix}nodes:drain"


_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

#: Lua for the write script (after its prelude, which defines ``fail``): the fencing check.
FENCE = """
-- KEYS[ki], ...: each job's epoch counter. ARGV[ai]: count, then count x (job id, epoch).
-- Fails with 'FENCED <n> <n> ...' naming (1-based) the pairs whose epoch is not the stored one.
local function check_epochs(ki, ai)
  local stale = {}
  for i = 0, tonumber(ARGV[ai]) - 1 do
    local stored = redis.call('GET', KEYS[ki + i])
    local epoch = stored and tonumber(stored) or 0
    if epoch ~= tonumber(ARGV[ai + 2 * i + 2]) then stale[#stale + 1] = tostring(i + 1) end
  end
  if #stale > 0 then fail('FENCED ' .. table.concat(stale, ' ')) end
end
"""

_CLAIM_JOB = (
    _NOW
    + """
-- KEYS: epoch, lease. ARGV: node, ttl ms, steal (1/0). Returns the new epoch, or nil.
local now = now_ms()
local expires = tonumber(redis.call('HGET', KEYS[2], 'expires'))
if expires and expires > now and ARGV[3] ~= '1' then return false end
local epoch = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'node', ARGV[1], 'epoch', epoch, 'expires', now + tonumber(ARGV[2]))
return epoch
"""
)

_RENEW_LEASES = (
    _NOW
    + """
-- KEYS: epoch, lease per job. ARGV: node, ttl ms, then job id, epoch per job.
-- Returns the ids of the jobs whose epoch changed or whose lease is not the node's (released):
-- lost; the others' leases are extended.
local expires = now_ms() + tonumber(ARGV[2])
local lost = {}
for i = 1, #KEYS / 2 do
  local job_id, epoch = ARGV[2 * i + 1], tonumber(ARGV[2 * i + 2])
  local stored = redis.call('GET', KEYS[2 * i - 1])
  if (stored and tonumber(stored) or 0) ~= epoch or redis.call('HGET', KEYS[2 * i], 'node') ~= ARGV[1] then
    lost[#lost + 1] = job_id
  else
    redis.call('HSET', KEYS[2 * i], 'node', ARGV[1], 'epoch', epoch, 'expires', expires)
  end
end
return lost
"""
)

_RELEASE_JOB = """
-- KEYS: epoch, lease. ARGV: node, epoch. Returns 1 if the lease was the node's and is gone.
local stored = redis.call('GET', KEYS[1])
if (stored and tonumber(stored) or 0) ~= tonumber(ARGV[2]) then return 0 end
if redis.call('HGET', KEYS[2], 'node') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""

_GET_LEASE = (
    _NOW
    + """
-- KEYS: lease. Returns {node, epoch, ms until expiry (negative: expired)}, or nil.
local lease = redis.call('HMGET', KEYS[1], 'node', 'epoch', 'expires')
if not lease[1] then return false end
return {lease[1], tonumber(lease[2]), tonumber(lease[3]) - now_ms()}
"""
)

_UNOWNED_JOBS = (
    _NOW
    + """
-- KEYS: jobs:live. ARGV: limit, job key prefix, lease key suffix, creation digits.
-- Returns the ids of live jobs without a live lease, oldest update first; a job suspended for
-- an operator (not handed off) is left out: no node takes it up by itself.
local now, limit, digits = now_ms(), tonumber(ARGV[1]), tonumber(ARGV[4])
local out = {}
if limit <= 0 then return out end
for _, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], '-', '+')) do
  local at = string.find(member, '\\0', 1, true)
  local job_id = string.sub(member, at + 1 + digits)
  local expires = tonumber(redis.call('HGET', ARGV[2] .. job_id .. ARGV[3], 'expires'))
  if not expires or expires <= now then
    local raw = redis.call('GET', ARGV[2] .. job_id)
    local ok, record = pcall(cjson.decode, raw or 'null')
    local held = ok and type(record) == 'table' and record.status == 'suspended' and record.handoff ~= true
    if not held then
      out[#out + 1] = job_id
      if #out >= limit then break end
    end
  end
end
return out
"""
)

_PUT_NODE = (
    _NOW
    + """
-- KEYS: nodes, nodes:seen. ARGV: name, info JSON, ttl ms. A drain request stays.
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], string.format('%d %d', now_ms(), tonumber(ARGV[3])))
return 1
"""
)

_LIST_NODES = (
    _NOW
    + """
-- KEYS: nodes, nodes:seen, nodes:drain. ARGV: ms after its ttl that a dead node is forgotten.
-- Returns now ms, then name, info, seen ms, ttl ms, drain (1/0) per node; forgets old ones.
local now, forget = now_ms(), tonumber(ARGV[1])
local out = {now}
local seen = redis.call('HGETALL', KEYS[2])
for i = 1, #seen, 2 do
  local name = seen[i]
  local at, ttl = string.match(seen[i + 1], '^(%d+) (%d+)$')
  local info = redis.call('HGET', KEYS[1], name)
  if not info or not at or now - tonumber(at) > tonumber(ttl) + forget then
    redis.call('HDEL', KEYS[1], name)
    redis.call('HDEL', KEYS[2], name)
    redis.call('SREM', KEYS[3], name)
  else
    out[#out + 1] = name
    out[#out + 1] = info
    out[#out + 1] = tonumber(at)
    out[#out + 1] = tonumber(ttl)
    out[#out + 1] = redis.call('SISMEMBER', KEYS[3], name)
  end
end
return out
"""
)

_REQUEST_DRAIN = """
-- KEYS: nodes, nodes:drain. ARGV: name. Returns 0 when no such node is registered.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

_REMOVE_NODE = """
-- KEYS: nodes, nodes:seen, nodes:drain. ARGV: name.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
"""

#: Script name (the RedisStore method that runs it) → Lua source.
CLUSTER_SCRIPTS = {
    "claim_job": _CLAIM_JOB,
    "renew_leases": _RENEW_LEASES,
    "release_job": _RELEASE_JOB,
    "get_lease": _GET_LEASE,
    "unowned_jobs": _UNOWNED_JOBS,
    "put_node": _PUT_NODE,
    "list_nodes": _LIST_NODES,
    "request_drain": _REQUEST_DRAIN,
    "remove_node": _REMOVE_NODE,
}
