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
