"""The Redis layout in one place: the key names (behaviour spec §7) and the Lua scripts
that read and write them, each script one atomic step on the server.

Every key starts with the namespace (``MIRROR_NEURON_REDIS_NAMESPACE``, default
``mirror_neuron``) and a colon. The keys the original runtime wrote keep its exact names
and types, so tools written against the original can read a store we write:

=====================================  ========  =================================================
key                                    type      content
=====================================  ========  =================================================
``<ns>:jobs``                          set       every job id
``<ns>:job:<id>``                      string    the job record, JSON
``<ns>:job:<id>:events``               list      events, JSON, oldest first (RPUSH); each has ``seq``
``<ns>:job:<id>:agents``               set       ids of the agents that have a snapshot
``<ns>:job:<id>:agent:<agent_id>``     string    an agent snapshot, JSON
``<ns>:channel:events:<id>``           pub/sub   each event JSON, published as it is stored
=====================================  ========  =================================================

Our additions, which the original did not have (an index, a high-water mark, and the
leases and nodes of :mod:`.ownership`, scripts in :mod:`.keys_cluster`; a tool that only
knows the keys above can ignore them):

=====================================  ========  =================================================
``<ns>:job:<id>:events:seq``           string    highest event ``seq`` stored: a replayed event
                                                 with a seq at or below it is ignored
``<ns>:jobs:recent``                   zset      one member per job (all scores 0, ordered by
                                                 member): ``<updated>\\0<creation no.><job id>``,
                                                 so ``ZREVRANGEBYLEX`` lists newest first
``<ns>:jobs:live``                     zset      the same members, for jobs whose status is not
                                                 terminal
``<ns>:jobs:order``                    hash      job id → its current member in the two zsets
``<ns>:jobs:created``                  string    counter giving each new job its creation number
``<ns>:job:<id>:mailboxes``            set       ids of the agents with queued (unconsumed) mail
``<ns>:job:<id>:mailbox:<agent_id>``   zset      queued mail: score = position, member =
                                                 ``<position>:<message JSON>``
``<ns>:job:<id>:blobs``                hash      named JSON values of the job (manifest, outputs)
``<ns>:job:<id>:epoch``                string    the job's lease epoch counter (missing: 0)
``<ns>:job:<id>:lease``                hash      its lease: ``node``, ``epoch``, ``expires`` (server
                                                 ms; kept after expiry, deleted on release)
``<ns>:nodes``                         hash      node name → its info, JSON
``<ns>:nodes:seen``                    hash      node name → ``<last heartbeat ms> <ttl ms>``
``<ns>:nodes:drain``                   set       names of the nodes asked to drain
=====================================  ========  =================================================

Like the original, ids are not escaped: a job id that itself contains ``:events`` or
``:agent:`` could collide with another job's keys.

The scripts (:data:`SCRIPTS`) keep these keys consistent: Redis runs a script without
interleaving any other command, so a reader never sees half a batch. Redis does not roll
a failed script back, so the write scripts read and check everything first and only then
write. The scripts build some key names themselves (a job's agent keys, the records named
by the index), which Redis Cluster does not allow: the layout is for a single server.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import TERMINAL_STATUSES
from .keys_cluster import CLUSTER_SCRIPTS, FENCE, ClusterKeys

__all__ = ["CREATION_DIGITS", "DEFAULT_NAMESPACE", "SCRIPTS", "Keys"]

#: The namespace the original runtime used.
DEFAULT_NAMESPACE = "mirror_neuron"
#: Width of the zero-padded creation number inside a ``jobs:recent`` member.
CREATION_DIGITS = 16


@dataclass(frozen=True, slots=True)
class Keys(ClusterKeys):
    """Key names for one namespace; an empty namespace means no prefix at all (:attr:`prefix`)."""

    namespace: str = DEFAULT_NAMESPACE

    # -- the original's keys --------------------------------------------------------------

    @property
    def jobs(self) -> str:
        """Set of every job id."""
        return f"{self.prefix}jobs"

    def job(self, job_id: str) -> str:
        """String: the job record (JSON)."""
        return f"{self.prefix}job:{job_id}"

    def events(self, job_id: str) -> str:
        """List: the job's events (JSON), oldest first."""
        return f"{self.prefix}job:{job_id}:events"

    def agents(self, job_id: str) -> str:
        """Set: ids of the job's agents that have a snapshot."""
        return f"{self.prefix}job:{job_id}:agents"

    def agent_prefix(self, job_id: str) -> str:
        """What :meth:`agent` puts before the agent id (used inside Lua scripts)."""
        return f"{self.prefix}job:{job_id}:agent:"

    def agent(self, job_id: str, agent_id: str) -> str:
        """String: one agent's snapshot (JSON)."""
        return f"{self.agent_prefix(job_id)}{agent_id}"

    def channel(self, job_id: str) -> str:
        """Pub/sub channel on which each stored event of the job is published."""
        return f"{self.prefix}channel:events:{job_id}"

    # -- our additions --------------------------------------------------------------------

    def event_seq(self, job_id: str) -> str:
        """String: the highest event seq stored for the job."""
        return f"{self.prefix}job:{job_id}:events:seq"

    def mailboxes(self, job_id: str) -> str:
        """Set: ids of the job's agents that have queued mail."""
        return f"{self.prefix}job:{job_id}:mailboxes"

    def mailbox_prefix(self, job_id: str) -> str:
        """What :meth:`mailbox` puts before the agent id (used inside Lua scripts)."""
        return f"{self.prefix}job:{job_id}:mailbox:"

    def mailbox(self, job_id: str, agent_id: str) -> str:
        """Sorted set: an agent's queued mail, scored by position."""
        return f"{self.mailbox_prefix(job_id)}{agent_id}"

    def blobs(self, job_id: str) -> str:
        """Hash: the job's named JSON values."""
        return f"{self.prefix}job:{job_id}:blobs"

    @property
    def job_prefix(self) -> str:
        """What :meth:`job` puts before the job id (used inside Lua scripts)."""
        return f"{self.prefix}job:"

    @property
    def recent(self) -> str:
        """Sorted set of all jobs, ordered by last update then creation (see the module doc)."""
        return f"{self.prefix}jobs:recent"

    @property
    def live(self) -> str:
        """Sorted set like :attr:`recent`, holding only jobs whose status is not terminal."""
        return f"{self.prefix}jobs:live"

    @property
    def order(self) -> str:
        """Hash: job id → its member in :attr:`recent` / :attr:`live`."""
        return f"{self.prefix}jobs:order"

    @property
    def created(self) -> str:
        """Counter of jobs ever created, giving each its creation number."""
        return f"{self.prefix}jobs:created"


# -- Lua scripts ------------------------------------------------------------------------------

# Items per RPUSH/SADD inside a script: Lua's unpack() fails past ~8000 values.
CHUNK = 1000

_PRELUDE = """
local TERMINAL = {$TERMINAL}
local DIGITS = $DIGITS
local CHUNK = $CHUNK

local function fail(message)
  error({err = 'MNSTORE ' .. message})
end

local function check_type(key, want)
  local found = redis.call('TYPE', key).ok
  if found ~= 'none' and found ~= want then
    fail(key .. ' holds a ' .. found .. ', not a ' .. want)
  end
end

-- Is the stored job record terminal? (false when there is none)
local function stored_terminal(key)
  local raw = redis.call('GET', key)
  if not raw then return false end
  local ok, record = pcall(cjson.decode, raw)
  if not ok or type(record) ~= 'table' then
    fail(key .. ' does not hold a JSON job record')
  end
  return TERMINAL[record.status] == true
end

-- The index keys, checked before anything is written.
local function check_index(k)
  check_type(k.jobs, 'set')
  check_type(k.recent, 'zset')
  check_type(k.live, 'zset')
  check_type(k.order, 'hash')
  local created = redis.call('GET', k.created)
  if created and not tonumber(created) then fail(k.created .. ' is not a number') end
end

-- Write a job record and move it in the list_jobs index. The member of a job in
-- jobs:recent / jobs:live is <updated>\\0<creation number><job id>; the creation number
-- is kept across updates, so ties sort newest-created first.
local function put_job(k, key, job_id, record, recent, terminal)
  redis.call('SET', key, record)
  redis.call('SADD', k.jobs, job_id)
  local old = redis.call('HGET', k.order, job_id)
  local number
  if old then
    local at = string.find(old, '\\0', 1, true)
    number = string.sub(old, at + 1, at + DIGITS)
    redis.call('ZREM', k.recent, old)
    redis.call('ZREM', k.live, old)
  else
    number = string.format('%0' .. DIGITS .. 'd', redis.call('INCR', k.created))
  end
  local member = recent .. '\\0' .. number .. job_id
  redis.call('ZADD', k.recent, 0, member)
  if terminal ~= '1' then redis.call('ZADD', k.live, 0, member) end
  redis.call('HSET', k.order, job_id, member)
end
"""
_PRELUDE = (
    _PRELUDE.replace("$TERMINAL", ", ".join(f"[{status!r}] = true" for status in sorted(TERMINAL_STATUSES)))
    .replace("$DIGITS", str(CREATION_DIGITS))
    .replace("$CHUNK", str(CHUNK))
)

_WRITE_BATCH = (
    _PRELUDE
    + FENCE
    + """
-- KEYS: jobs, recent, live, order, created, then the keys of each section below.
-- ARGV: #records, #event groups, #agent groups, #mail groups, #consumed groups, #blob groups,
--       retention (0: keep all), then the arguments of each section:
--   records      KEYS job key              ARGV job id, record JSON, recent text, terminal (1/0)
--   event groups KEYS events list, seq key ARGV channel, count, highest seq, "seq,seq,..."
--                                               (ascending, no repeats), count event JSONs
--   agent groups KEYS agents set, count snapshot keys       ARGV count, count x (agent id, JSON)
--   mail groups  KEYS mailboxes set, count mailbox keys     ARGV count, count x (agent id, pos, member)
--   consumed     KEYS mailboxes set, count mailbox keys     ARGV count, count x (agent id, pos)
--   blob groups  KEYS blobs hash                            ARGV count, count x (name, JSON)
--   epochs       KEYS count epoch counters                  ARGV count, count x (job id, epoch)
local k = {jobs = KEYS[1], recent = KEYS[2], live = KEYS[3], order = KEYS[4], created = KEYS[5]}
local njobs, ngroups, nagents = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local nmail, nconsumed, nblobs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local retention = tonumber(ARGV[7])
local ki, ai = 6, 8

-- Phase 1: read and check everything; nothing is written yet.
local terminal_now, writes, write_order = {}, {}, {}
if njobs > 0 then check_index(k) end
for _ = 1, njobs do
  local key = KEYS[ki]
  ki = ki + 1
  local is_terminal = terminal_now[key]
  if is_terminal == nil then is_terminal = stored_terminal(key) end
  if is_terminal then
    terminal_now[key] = true
  else
    terminal_now[key] = ARGV[ai + 3] == '1'
    if writes[key] == nil then write_order[#write_order + 1] = key end
    writes[key] = ai
  end
  ai = ai + 4
end
local groups = {}
for g = 1, ngroups do
  local list, seqkey = KEYS[ki], KEYS[ki + 1]
  ki = ki + 2
  check_type(list, 'list')
  local last = redis.call('GET', seqkey)
  if last then
    last = tonumber(last)
    if not last then fail(seqkey .. ' is not a number') end
  else
    last = 0
  end
  local count = tonumber(ARGV[ai + 1])
  -- The first event above the stored high-water mark; all after it are above it too.
  -- Normally that is the first one, and gmatch stops there.
  local cut, i = count + 1, 0
  for seq in string.gmatch(ARGV[ai + 3], '%d+') do
    i = i + 1
    if tonumber(seq) > last then
      cut = i
      break
    end
  end
  local first = ai + 4
  groups[g] = {list, seqkey, ARGV[ai], first + cut - 1, first + count - 1, ARGV[ai + 2]}
  ai = first + count
end
-- Sections of (set or hash, count keys, count rows of `width` arguments).
local function sections(n, set_type, row_keys, row_type, width)
  local found = {}
  for g = 1, n do
    local count = tonumber(ARGV[ai])
    check_type(KEYS[ki], set_type)
    if row_keys then
      for i = 1, count do check_type(KEYS[ki + i], row_type) end
    end
    found[g] = {KEYS[ki], ki + 1, count, ai + 1}
    ki = ki + 1 + (row_keys and count or 0)
    ai = ai + 1 + width * count
  end
  return found
end
local agent_groups = sections(nagents, 'set', true, 'string', 2)
local mail_groups = sections(nmail, 'set', true, 'zset', 3)
local consumed_groups = sections(nconsumed, 'set', true, 'zset', 2)
local blob_groups = sections(nblobs, 'hash', false, nil, 2)
check_epochs(ki, ai)  -- fencing: one stale lease epoch refuses the whole batch

-- Phase 2: write.
for _, key in ipairs(write_order) do
  local at = writes[key]
  put_job(k, key, ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
end
local appended = 0
for _, group in ipairs(groups) do
  local list, seqkey, channel, from, to, highest = unpack(group)
  if from <= to then
    for at = from, to, CHUNK do
      redis.call('RPUSH', list, unpack(ARGV, at, math.min(at + CHUNK - 1, to)))
    end
    -- Publishing costs the server per event even when nobody listens: skip it then.
    if redis.call('PUBSUB', 'NUMSUB', channel)[2] > 0 then
      for at = from, to do
        redis.call('PUBLISH', channel, ARGV[at])
      end
    end
    appended = appended + to - from + 1
    redis.call('SET', seqkey, highest)
    if retention > 0 then redis.call('LTRIM', list, -retention, -1) end
  end
end
for _, group in ipairs(agent_groups) do
  local set, first_key, count, at = unpack(group)
  for i = 0, count - 1 do
    redis.call('SET', KEYS[first_key + i], ARGV[at + 2 * i + 1])
  end
  for i = 0, count - 1, CHUNK do
    local ids = {}
    for j = i, math.min(i + CHUNK, count) - 1 do ids[#ids + 1] = ARGV[at + 2 * j] end
    redis.call('SADD', set, unpack(ids))
  end
end
for _, group in ipairs(mail_groups) do
  local set, first_key, count, at = unpack(group)
  for i = 0, count - 1 do
    local box, pos = KEYS[first_key + i], ARGV[at + 3 * i + 1]
    redis.call('ZREMRANGEBYSCORE', box, pos, pos)  -- a rewritten position replaces its message
    redis.call('ZADD', box, pos, ARGV[at + 3 * i + 2])
    redis.call('SADD', set, ARGV[at + 3 * i])
  end
end
for _, group in ipairs(consumed_groups) do
  local set, first_key, count, at = unpack(group)
  for i = 0, count - 1 do
    local box = KEYS[first_key + i]
    redis.call('ZREMRANGEBYSCORE', box, '-inf', ARGV[at + 2 * i + 1])
    if redis.call('ZCARD', box) == 0 then redis.call('SREM', set, ARGV[at + 2 * i]) end
  end
end
for _, group in ipairs(blob_groups) do
  local hash, _, count, at = unpack(group)
  for i = 0, count - 1, CHUNK do
    redis.call('HSET', hash, unpack(ARGV, at + 2 * i, at + 2 * math.min(i + CHUNK, count) - 1))
  end
end
return {#write_order, appended}
"""
)

_CREATE_JOB = (
    _PRELUDE
    + """
-- KEYS: jobs, recent, live, order, created, job key. ARGV: job id, record, recent text, terminal.
-- Returns {1} when created, {0, stored record} when the id exists.
local k = {jobs = KEYS[1], recent = KEYS[2], live = KEYS[3], order = KEYS[4], created = KEYS[5]}
local existing = redis.call('GET', KEYS[6])
if existing then return {0, existing} end
check_index(k)
put_job(k, KEYS[6], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return {1}
"""
)

_DELETE_JOB = """
-- KEYS: job, events, seq, agents, jobs, recent, live, order, mailboxes, blobs, epoch, lease.
-- ARGV: job id, agent key prefix, mailbox key prefix. Returns 1 if the job record existed.
local existed = redis.call('EXISTS', KEYS[1])
local function del_members(set, prefix)
  if redis.call('TYPE', set).ok == 'set' then
    for _, id in ipairs(redis.call('SMEMBERS', set)) do redis.call('DEL', prefix .. id) end
  end
end
del_members(KEYS[4], ARGV[2])
del_members(KEYS[9], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[9], KEYS[10], KEYS[11], KEYS[12])
if redis.call('TYPE', KEYS[5]).ok == 'set' then redis.call('SREM', KEYS[5], ARGV[1]) end
if redis.call('TYPE', KEYS[8]).ok == 'hash' then
  local member = redis.call('HGET', KEYS[8], ARGV[1])
  if member then
    redis.call('ZREM', KEYS[6], member)
    redis.call('ZREM', KEYS[7], member)
    redis.call('HDEL', KEYS[8], ARGV[1])
  end
end
return existed
"""

_LIST_JOBS = """
-- KEYS: the index (jobs:recent or jobs:live). ARGV: limit (-1: all), job key prefix, the
-- highest member to list ('+': from the top; '(' .. text: only members below the text).
-- Returns member, record, member, record, ... (a record is nil if its key is gone).
local limit = tonumber(ARGV[1])
local members
if limit >= 0 then
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], '-', 'LIMIT', 0, limit)
else
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], '-')
end
local out = {}
for i, member in ipairs(members) do
  local at = string.find(member, '\\0', 1, true)
  out[2 * i - 1] = member
  out[2 * i] = redis.call('GET', ARGV[2] .. string.sub(member, at + 1 + $DIGITS))
end
return out
""".replace("$DIGITS", str(CREATION_DIGITS))

# Events are stored in seq order (the write script only appends seqs above the highest
# stored), and the runtime's seqs are dense, so seq `after + 1` normally sits at index
# `after + 1 - first seq`; one LINDEX confirms it. Gaps (or a trimmed head) fall back to a
# binary search. Each event's JSON ends with its seq (`…,"seq":N}`), read without decoding.
_READ_EVENTS = """
-- KEYS: events list. ARGV: after, limit (-1: all). Returns the events with seq > after.
local key = KEYS[1]
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = redis.call('LLEN', key)
if n == 0 or limit == 0 then return {} end
local function seq_at(i)
  local event = redis.call('LINDEX', key, i)
  local seq = string.match(event, '"seq":(%d+)}$')
  if seq then return tonumber(seq) end
  local ok, decoded = pcall(cjson.decode, event)
  if ok and type(decoded) == 'table' and type(decoded.seq) == 'number' then return decoded.seq end
  error({err = 'MNSTORE an event in ' .. key .. ' has no seq'})
end
if seq_at(n - 1) <= after then return {} end
local start = 0
local first = seq_at(0)
if after >= first then
  start = after - first + 1
  if start >= n or seq_at(start) ~= first + start then
    local lo, hi = 0, n - 1
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if seq_at(mid) > after then hi = mid else lo = mid + 1 end
    end
    start = lo
  end
end
local stop = -1
if limit > 0 then stop = start + limit - 1 end
return redis.call('LRANGE', key, start, stop)
"""

_READ_MAILBOXES = """
-- KEYS: mailboxes set. ARGV: mailbox key prefix. Returns agent id, {member, ...}, ...
local out = {}
for _, agent_id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local rows = redis.call('ZRANGE', ARGV[1] .. agent_id, 0, -1)
  if #rows > 0 then
    out[#out + 1] = agent_id
    out[#out + 1] = rows
  end
end
return out
"""

_GET_AGENTS = """
-- KEYS: agents set. ARGV: agent key prefix. Returns agent id, snapshot, agent id, snapshot, ...
local out = {}
for i, agent_id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  out[2 * i - 1] = agent_id
  out[2 * i] = redis.call('GET', ARGV[1] .. agent_id)
end
return out
"""

#: Script name (the RedisStore method that runs it) → Lua source.
SCRIPTS = {
    "write_batch": _WRITE_BATCH,
    "create_job": _CREATE_JOB,
    "delete_job": _DELETE_JOB,
    "list_jobs": _LIST_JOBS,
    "read_events": _READ_EVENTS,
    "read_mailboxes": _READ_MAILBOXES,
    "get_agents": _GET_AGENTS,
    **CLUSTER_SCRIPTS,
}
