//! The Lua scripts, for what must be atomic or should take one round trip.
//!
//! Some scripts derive keys from the prefix (a user's set from a node's entry, a node's
//! lease from a presence member) instead of receiving them in `KEYS`: fine on a standalone
//! Redis (or one primary with replicas), not on Redis Cluster, which this crate does not
//! target.

use std::sync::LazyLock;

use redis::Script;

/// Sets the node's lease and lists the node in `{prefix}nodes`; returns the previous
/// value of the lease key (nil if it had expired or Redis lost it).
/// KEYS: node lease, nodes set. ARGV: token, lease ms, node id.
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return old
",
    )
});

/// Registers a batch of sessions of one node, each ordered by a fresh `{prefix}seq`
/// (`ZADD NX`: a session registered again keeps its place).
/// KEYS: seq, the node's sessions set, then one user set per session.
/// ARGV: node id, then user, session pairs in the order of the user keys.
pub(crate) static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local node = ARGV[1]
for i = 3, #KEYS do
  local user = ARGV[2 * (i - 3) + 2]
  local session = ARGV[2 * (i - 3) + 3]
  local seq = redis.call('INCR', KEYS[1])
  redis.call('ZADD', KEYS[i], 'NX', seq, node .. '/' .. session)
  redis.call('SADD', KEYS[2], user .. '\n' .. session)
end
return #KEYS - 2
",
    )
});

/// A user's members whose node holds a lease, oldest registration first; removes the
/// members of nodes without one.
/// KEYS: the user's set. ARGV: key prefix.
pub(crate) static SESSIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local out = {}
local live = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local node = string.match(m, '^(.*)/%d+$')
  if node then
    if live[node] == nil then
      live[node] = redis.call('EXISTS', ARGV[1] .. 'node:' .. node) == 1
    end
    if live[node] then
      out[#out + 1] = m
    else
      redis.call('ZREM', KEYS[1], m)
    end
  end
end
return out
",
    )
});

/// Removes a node's registrations from its users' sets and deletes its sessions set; with
/// the optional keys also drops it from the nodes set and deletes its inbox. With
/// ARGV[3] = '1' it does nothing (returns -1) while the node holds a lease.
/// KEYS: node lease, its sessions set, [nodes set, its inbox]. ARGV: prefix, node id, '1'|'0'.
pub(crate) static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local members = redis.call('SMEMBERS', KEYS[2])
for _, m in ipairs(members) do
  local user, session = string.match(m, '^(.*)\n(%d+)$')
  if user then
    redis.call('ZREM', ARGV[1] .. 'user:' .. user, ARGV[2] .. '/' .. session)
  end
end
redis.call('DEL', KEYS[2])
if KEYS[3] then redis.call('SREM', KEYS[3], ARGV[2]) end
if KEYS[4] then redis.call('DEL', KEYS[4]) end
return #members
",
    )
});

/// For every node in the nodes set and every extra id: `{id, lease token or nil, in_set}`
/// (the token is the holding process's: a node restarted under the same id has another).
/// KEYS: nodes set. ARGV: prefix, then extra ids.
pub(crate) static NODE_STATES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local seen = {}
local out = {}
local function add(n, in_set)
  if not seen[n] then
    seen[n] = true
    out[#out + 1] = {n, redis.call('GET', ARGV[1] .. 'node:' .. n), in_set}
  end
end
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do add(n, 1) end
for i = 2, #ARGV do add(ARGV[i], 0) end
return out
",
    )
});

/// Appends a message to a node's inbox if the node holds a lease; returns the entry id,
/// or nil if the node is not live.
/// KEYS: receiver's lease, receiver's inbox. ARGV: sender id, payload, max length.
/// `SEND` for several payloads in one round trip: KEYS[1] the receiver's lease, KEYS[2] its
/// inbox; ARGV[1] the sender, ARGV[2] the inbox's MAXLEN, ARGV[3..] the payloads, appended
/// in order. Returns how many were appended, or false when the receiver holds no lease.
pub(crate) static SEND_MANY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'from', ARGV[1], 'd', ARGV[i])
end
return #ARGV - 2
",
    )
});

pub(crate) static SEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'from', ARGV[1], 'd', ARGV[2])
",
    )
});
