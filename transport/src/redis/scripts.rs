//! The Lua scripts that make multi-step changes atomic on the Redis server.
//! `redis::Script` sends EVALSHA and falls back to EVAL, so a restarted (empty) Redis works.

use deadpool_redis::redis::Script;
use std::sync::LazyLock;

/// Compare-and-set of a job record, then wake its waiters. In the same step the job's id
/// moves between node indexes, a status change appends its status event, and a record
/// that becomes terminal with a callback URL gets its webhook delivery queued (so neither
/// can be lost in between).
/// KEYS: record, index to leave, index to join, events, delivery, due set.
/// ARGV: expected JSON, new JSON, TTL ms, wake channel, job id, leave (`1`/`0`),
/// join (`1`/`0`), event JSON or "", delivery JSON or "", now ms, wake-up message.
/// Returns `{0}` missing, `{1, current}` the record changed meanwhile, `{2}` written.
///
/// The forward-only rule itself is applied in Rust by `RecordUpdate::apply` on the record
/// read just before; this script only guarantees nobody wrote in between, so a concurrent
/// `request_cancel` or a racing terminal update is never overwritten.
pub(super) static COMPARE_AND_SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then return {0, false} end
if current ~= ARGV[1] then return {1, current} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[6] == '1' then redis.call('SREM', KEYS[2], ARGV[5]) end
if ARGV[7] == '1' then redis.call('SADD', KEYS[3], ARGV[5]) end
if ARGV[8] ~= '' then
  redis.call('RPUSH', KEYS[4], ARGV[8])
  redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
if ARGV[9] ~= '' and redis.call('SET', KEYS[5], ARGV[9], 'NX', 'PX', ARGV[3]) then
  redis.call('ZADD', KEYS[6], ARGV[10], ARGV[5])
end
redis.call('PUBLISH', ARGV[4], ARGV[11])
return {2, false}
",
    )
});

/// Append an event to an existing job's log, then wake its readers.
/// KEYS: record, events. ARGV: event JSON, TTL ms, wake channel, job id.
/// Returns the new event's index (1-based), or 0 if the job does not exist.
pub(super) static APPEND_EVENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local index = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return index
",
    )
});

/// Bind a session unless bound, filing it under its node; returns the binding that holds.
/// KEYS: session, the node's session set. ARGV: node id, user.
pub(super) static BIND_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return ARGV[1]
",
    )
});

/// Delete a session binding only if it still points at the given node.
/// KEYS: session, the node's session set. ARGV: node id, user.
pub(super) static UNBIND_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
return redis.call('DEL', KEYS[1])
",
    )
});

/// Live nodes with their draining flag and bound-session count; forgets ids whose
/// heartbeat key expired. KEYS: nodes set, draining set. ARGV: node key prefix
/// (`{prefix}node:`), node session set prefix (`{prefix}node-sessions:`).
/// Returns `{{info JSON, draining 0|1, bound sessions}, …}`.
pub(super) static LIVE_NODES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. id)
  if info then
    table.insert(live, {info, redis.call('SISMEMBER', KEYS[2], id), redis.call('SCARD', ARGV[2] .. id)})
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return live
",
    )
});

/// Insert a record unless it exists, index it under its session (and, if it names a node
/// and is not terminal, under that node); a record inserted already terminal gets its
/// status event and its webhook queued. KEYS: record, session index, delivery, due set,
/// events[, node index]. ARGV: record JSON, TTL ms, seq, job id, index TTL ms, delivery
/// JSON or "", now ms, event JSON or "".
/// Returns 1 inserted, 0 the id exists.
pub(super) static INSERT_JOB: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[6] ~= '' and redis.call('SET', KEYS[3], ARGV[6], 'NX', 'PX', ARGV[2]) then
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[4])
end
if ARGV[8] ~= '' then
  redis.call('RPUSH', KEYS[5], ARGV[8])
  redis.call('PEXPIRE', KEYS[5], ARGV[2])
end
if KEYS[6] then redis.call('SADD', KEYS[6], ARGV[4]) end
return 1
",
    )
});

/// Bind an idempotency key unless bound. KEYS: key. ARGV: entry JSON, TTL ms.
/// Returns false when bound now, else the existing entry.
pub(super) static REMEMBER_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
",
    )
});

/// Delete a key only if it holds the given value. KEYS: key. ARGV: value.
pub(super) static DELETE_IF_EQUAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Claim due deliveries: each moves to the end of its lease in the due set and gets a
/// fresh claim token. KEYS: due set.
/// ARGV: now ms, lease end ms, limit, claim key prefix, token base, claim key TTL ms.
/// Returns `{{job id, token}, …}`.
pub(super) static CLAIM_DELIVERIES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local claimed = {}
for i, id in ipairs(ids) do
  local token = ARGV[5] .. ':' .. i
  redis.call('ZADD', KEYS[1], ARGV[2], id)
  redis.call('SET', ARGV[4] .. id, token, 'PX', ARGV[6])
  table.insert(claimed, {id, token})
end
return claimed
",
    )
});

/// Record an attempt if the claim is current: write the delivery, end the claim, and
/// schedule the next attempt or take the delivery off the due set.
/// KEYS: delivery, claim, due set. ARGV: token, delivery JSON, TTL ms, next due ms or "",
/// job id. Returns 1 written, 0 the claim is not current.
pub(super) static RECORD_ATTEMPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[3], ARGV[5])
else
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
end
return 1
",
    )
});

/// The ids in a node's job index whose record still exists; drops the others (records
/// that expired without ending).
/// KEYS: node index. ARGV: job key prefix (`{prefix}job:`).
pub(super) static ACTIVE_JOBS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local active = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then
    table.insert(active, id)
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return active
",
    )
});

/// Allocate a session's next seq and say whether its publish turn has come (every
/// earlier seq's publish is over). KEYS: seq, publish mark. Returns `{seq, 1|0}`.
pub(super) static NEXT_SEQ_AND_TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seq = redis.call('INCR', KEYS[1])
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
if mark + 1 >= seq then return {seq, 1} end
return {seq, 0}
",
    )
});

/// A session's binding and whether its node's heartbeat is current.
/// KEYS: session. ARGV: node key prefix. Returns false, or `{node id, 1|0}`.
pub(super) static SESSION_BINDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local node = redis.call('GET', KEYS[1])
if not node then return false end
return {node, redis.call('EXISTS', ARGV[1] .. node)}
",
    )
});

/// Raise a session's publish mark to a seq, never lower it.
/// KEYS: mark. ARGV: seq.
pub(super) static FINISH_PUBLISH_TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local mark = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > mark then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
",
    )
});

/// Bind an unbound session to the candidate with the most free slots.
/// KEYS: session. ARGV: user, node session set prefix, then per candidate: node id,
/// capacity, sessions. Returns the binding that holds, or false if every candidate is full.
pub(super) static PLACE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then return current end
local best, most = nil, 0
for i = 3, #ARGV, 3 do
  local node = ARGV[i]
  local load = math.max(tonumber(ARGV[i + 2]), redis.call('SCARD', ARGV[2] .. node))
  local free = tonumber(ARGV[i + 1]) - load
  if free > most then best, most = node, free end
end
if not best then return false end
redis.call('SET', KEYS[1], best)
redis.call('SADD', ARGV[2] .. best, ARGV[1])
return best
",
    )
});

/// Unbind a session if it points at the node, and mark it lost.
/// KEYS: session, the node's session set, lost mark. ARGV: node id, user, mark TTL ms.
/// Returns 1 if it was bound there, else 0 (and changes nothing).
pub(super) static LOSE_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
return 1
",
    )
});

/// Unbind every session of a node and mark each lost.
/// KEYS: the node's session set. ARGV: node id, session key prefix, lost key prefix, TTL ms.
/// Returns the sessions unbound.
pub(super) static LOSE_SESSIONS_OF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local lost = {}
for _, user in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local session = ARGV[2] .. user
  if redis.call('GET', session) == ARGV[1] then
    redis.call('DEL', session)
    redis.call('SET', ARGV[3] .. user, '1', 'PX', ARGV[4])
    table.insert(lost, user)
  end
end
redis.call('DEL', KEYS[1])
return lost
",
    )
});

/// Watched nodes whose heartbeat key is gone.
/// KEYS: watched set. ARGV: node key prefix (`{prefix}node:`).
pub(super) static EXPIRED_NODES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then table.insert(dead, id) end
end
return dead
",
    )
});

/// Stop watching a node unless it beats again.
/// KEYS: watched set, the node's heartbeat. ARGV: node id.
pub(super) static FORGET_NODE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return redis.call('SREM', KEYS[1], ARGV[1])
",
    )
});
