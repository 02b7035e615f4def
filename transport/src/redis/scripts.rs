//! The Lua scripts that make multi-step changes atomic on the Redis server.
//! `redis::Script` sends EVALSHA and falls back to EVAL, so a restarted (empty) Redis works.

use deadpool_redis::redis::Script;
use std::sync::LazyLock;

/// Compare-and-set of a job record, then wake its waiters.
/// KEYS: record. ARGV: expected JSON, new JSON, TTL ms, wake channel, job id.
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
redis.call('PUBLISH', ARGV[4], ARGV[5])
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

/// Bind a session unless bound; returns the binding that holds.
/// KEYS: session. ARGV: node id.
pub(super) static BIND_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
",
    )
});

/// Delete a session binding only if it still points at the given node.
/// KEYS: session. ARGV: node id.
pub(super) static UNBIND_SESSION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// Live nodes with their draining flag; forgets ids whose heartbeat key expired.
/// KEYS: nodes set, draining set. ARGV: node key prefix (`{prefix}node:`).
/// Returns `{{info JSON, draining 0|1}, …}`.
pub(super) static LIVE_NODES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local info = redis.call('GET', ARGV[1] .. id)
  if info then
    table.insert(live, {info, redis.call('SISMEMBER', KEYS[2], id)})
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return live
",
    )
});

/// Insert a record unless it exists, index it under its session, and queue its webhook
/// if it is inserted already terminal.
/// KEYS: record, session index, delivery, due set.
/// ARGV: record JSON, TTL ms, seq, job id, index TTL ms, delivery JSON or "", now ms.
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
return 1
",
    )
});

/// [`COMPARE_AND_SET`] of a record that becomes terminal and has a callback URL: the
/// webhook delivery is queued in the same step, so it cannot be lost in between.
/// KEYS: record, delivery, due set.
/// ARGV: expected JSON, new JSON, TTL ms, wake channel, job id, delivery JSON, now ms.
pub(super) static COMPARE_AND_SET_QUEUE_WEBHOOK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if not current then return {0, false} end
if current ~= ARGV[1] then return {1, current} end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[3]) then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[5])
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {2, false}
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
