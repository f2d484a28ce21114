"""
The Lua scripts a node runs in Redis, each one atomic step.

Keys live under the room's prefix C{sockserve:{ROOM}:} (the braces make it
one hash slot): C{stream} (the room's events), C{members} (a hash from the
key of a name, see L{sockserve.chat.names.nameKey}, to C{NODE LF NAME}),
C{node:NODE} (the keys of the names a node holds), C{nodes} (a sorted set
of nodes by the time, in Redis's clock, after which a node that has not
refreshed its entry is gone), C{seqs} (the last batch number each node
published), C{epoch} (changes when Redis lost its data), C{offset} (the
bytes of payload published so far: each entry carries the total after it,
C{o}) and C{progress} (a hash from a node to the offset of the last entry
it read: how far behind the slowest node is, in bytes).

Every script takes the prefix and the node as its first two arguments;
names and lines are arguments, never part of a key other than the node's
own set (whose id the node makes itself). The key of a name is computed by
the node and passed with it: the scripts never fold names themselves (Lua's
C{string.lower} and Python's disagree beyond ASCII); the one key a script
makes, a suffixed name's, follows L{nameKey}'s rule for C{#} and digits.
"""

from __future__ import annotations

# Shared: is a members entry held by the node?
_HELD_BY = """
local function heldBy(held, node)
  return held and string.sub(held, 1, #node + 1) == node .. '\\n'
end
"""

# The key of NAME#N, given NAME's key: nameKey keeps '#' and reads the
# digits 0 and 1 as the letters they look like.
_SUFFIXED = """
local function suffixed(key, n)
  local digits = string.gsub(tostring(n), '[01]', {['0'] = 'o', ['1'] = 'l'})
  return key .. '#' .. digits
end
"""

# Append an entry to the stream, its offset after it (see the module's
# docstring).
_APPEND = """
local function append(P, maxlen, node, seq, payload)
  local total = redis.call('INCRBY', P .. 'offset', #payload)
  redis.call('XADD', P .. 'stream', 'MAXLEN', '~', maxlen, '*',
    'n', node, 's', seq, 'e', payload, 'o', total)
  return total
end
"""

# The offset of the slowest node in the room (the least any node in the
# room reported), or -1 if none reported.
_SLOWEST = """
local function slowest(P)
  local nodes = redis.call('ZRANGE', P .. 'nodes', 0, -1)
  local low = -1
  if #nodes > 0 then
    for _, o in ipairs(redis.call('HMGET', P .. 'progress', unpack(nodes))) do
      if o then
        local v = tonumber(o)
        if low < 0 or v < low then low = v end
      end
    end
  end
  return low
end
"""

# Remove the members of node d, and publish their departure if any (first:
# a Redis out of memory refuses it before anything else is changed).
_DEPART = (
    _APPEND
    + """
local function depart(P, d, maxlen)
  local gone, keys = {}, {}
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'node:' .. d)) do
    local held = redis.call('HGET', P .. 'members', key)
    if heldBy(held, d) then
      table.insert(keys, key)
      table.insert(gone, string.sub(held, #d + 2))
    end
  end
  if #gone > 0 then
    append(P, maxlen, 'gone:' .. d, '0', 'x\\31' .. table.concat(gone, '\\31'))
    redis.call('HDEL', P .. 'members', unpack(keys))
  end
  redis.call('DEL', P .. 'node:' .. d)
  redis.call('ZREM', P .. 'nodes', d)
  redis.call('HDEL', P .. 'seqs', d)
  redis.call('HDEL', P .. 'progress', d)
end
"""
)

# ARGV: prefix, node, ttl in ms, a new epoch (used if there is none), the
# stream's length, 1 when the node (re)joins. Refresh the node (a node
# removed as gone is added again only when it rejoins: a heartbeat sent
# before a stall must not revive it); remove nodes past their time (and
# publish that their members left). Returns {epoch, 1 if the node was
# known (not removed as gone), Redis's time in ms}.
HEARTBEAT = (
    # Refreshing a node grows nothing: allowed while Redis is out of memory,
    # so that a full Redis does not make every node count the others gone.
    "#!lua flags=allow-oom\n"
    + _HELD_BY
    + _DEPART
    + """
local P, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local proposed, maxlen = ARGV[4], ARGV[5]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local epoch = redis.call('GET', P .. 'epoch')
if not epoch then
  epoch = proposed
  redis.call('SET', P .. 'epoch', epoch)
end
local known = redis.call('ZSCORE', P .. 'nodes', node)
if known or ARGV[6] == '1' then
  redis.call('ZADD', P .. 'nodes', now + ttl, node)
end
for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'nodes', '-inf', now)) do
  depart(P, d, maxlen)
end
return {epoch, known and 1 or 0, tostring(now)}
"""
)

# ARGV: prefix, node, the stream's length. The node is stopping: its
# members leave.
DEPART = (
    _HELD_BY
    + _DEPART
    + """
depart(ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)

# ARGV: prefix, node, name, its key, capacity. Admit a member: 'ok',
# 'taken', 'full', or 'gone' if the node itself was removed (it must rejoin).
ADMIT = """
local P, node, name, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local capacity = tonumber(ARGV[5])
if not redis.call('ZSCORE', P .. 'nodes', node) then return 'gone' end
if redis.call('HEXISTS', P .. 'members', key) == 1 then return 'taken' end
if redis.call('HLEN', P .. 'members') >= capacity then return 'full' end
redis.call('HSET', P .. 'members', key, node .. '\\n' .. name)
redis.call('SADD', P .. 'node:' .. node, key)
return 'ok'
"""

# ARGV: prefix, node, old name's key, new name, its key: 'ok', 'taken' or
# 'gone'.
RENAME = (
    _HELD_BY
    + """
local P, node, oldKey, new, newKey = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not redis.call('ZSCORE', P .. 'nodes', node) then return 'gone' end
if oldKey ~= newKey and redis.call('HEXISTS', P .. 'members', newKey) == 1 then
  return 'taken'
end
if heldBy(redis.call('HGET', P .. 'members', oldKey), node) then
  redis.call('HDEL', P .. 'members', oldKey)
  redis.call('SREM', P .. 'node:' .. node, oldKey)
end
redis.call('HSET', P .. 'members', newKey, node .. '\\n' .. new)
redis.call('SADD', P .. 'node:' .. node, newKey)
return 'ok'
"""
)

# ARGV: prefix, node, batch number, payload, the stream's length, then the
# keys of the names of the members who left in the batch. Publish a batch
# once: a batch whose number is not above the node's last is a retry of one
# already published, and is dropped. Returns {1 (0 for a retry), the
# offset, the slowest node's offset}.
PUBLISH = (
    _HELD_BY
    + _APPEND
    + _SLOWEST
    + """
local P, node, seq = ARGV[1], ARGV[2], tonumber(ARGV[3])
local payload, maxlen = ARGV[4], ARGV[5]
local last = tonumber(redis.call('HGET', P .. 'seqs', node) or '0')
if seq <= last then
  return {0, tonumber(redis.call('GET', P .. 'offset') or '0'), slowest(P)}
end
redis.call('HSET', P .. 'seqs', node, ARGV[3])
for i = 6, #ARGV do
  local key = ARGV[i]
  if heldBy(redis.call('HGET', P .. 'members', key), node) then
    redis.call('HDEL', P .. 'members', key)
    redis.call('SREM', P .. 'node:' .. node, key)
  end
end
local total = append(P, maxlen, node, ARGV[3], payload)
return {1, total, slowest(P)}
"""
)

# ARGV: prefix, node, the offset of the last entry the node read ('' if it
# does not know it yet). Note how far the node has read (if it is in the
# room); returns {the offset, the slowest node's offset}.
PROGRESS = (
    "#!lua flags=allow-oom\n"
    + _SLOWEST
    + """
local P, node, offset = ARGV[1], ARGV[2], ARGV[3]
if offset ~= '' and redis.call('ZSCORE', P .. 'nodes', node) then
  redis.call('HSET', P .. 'progress', node, offset)
end
return {tonumber(redis.call('GET', P .. 'offset') or '0'), slowest(P)}
"""
)

# ARGV: prefix, node, then the node's members' names, each followed by its
# key. (Re)register them after the node (re)connected: a name another node
# took meanwhile gets a #N suffix. Names the node held and no longer has
# are released. Returns the names as registered, in order.
REGISTER = (
    _HELD_BY
    + _SUFFIXED
    + """
local P, node = ARGV[1], ARGV[2]
local mine = P .. 'node:' .. node
local wanted, result = {}, {}
for i = 3, #ARGV, 2 do
  local name, base = ARGV[i], ARGV[i + 1]
  local final, key = name, base
  local held = redis.call('HGET', P .. 'members', key)
  local n = 2
  while ((held and not heldBy(held, node)) or wanted[key]) and n < 1000 do
    final = name .. '#' .. n
    key = suffixed(base, n)
    held = redis.call('HGET', P .. 'members', key)
    n = n + 1
  end
  redis.call('HSET', P .. 'members', key, node .. '\\n' .. final)
  wanted[key] = true
  table.insert(result, final)
end
for _, key in ipairs(redis.call('SMEMBERS', mine)) do
  if not wanted[key] and heldBy(redis.call('HGET', P .. 'members', key), node) then
    redis.call('HDEL', P .. 'members', key)
  end
end
redis.call('DEL', mine)
for key in pairs(wanted) do redis.call('SADD', mine, key) end
return result
"""
)

# ARGV: prefix, node. Who is here, and where the stream is: returns {the
# last entry's id, the last deleted entry's id, members as NODE LF NAME,
# the offset}.
SNAPSHOT = """
local P = ARGV[1]
local last, deleted = '0-0', '0-0'
if redis.call('EXISTS', P .. 'stream') == 1 then
  local info = redis.call('XINFO', 'STREAM', P .. 'stream')
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
    if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
  end
end
local offset = redis.call('GET', P .. 'offset') or '0'
return {last, deleted, redis.call('HVALS', P .. 'members'), offset}
"""

SCRIPTS = {
    "heartbeat": HEARTBEAT,
    "depart": DEPART,
    "admit": ADMIT,
    "rename": RENAME,
    "publish": PUBLISH,
    "register": REGISTER,
    "snapshot": SNAPSHOT,
    "progress": PROGRESS,
}
