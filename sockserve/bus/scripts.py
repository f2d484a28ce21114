"""
The Lua scripts a node runs in Redis, each one atomic step.

Every key starts with the bus's prefix C{P} (C{sockserve:}), the first
argument of every script; the second is the node's id. The people and the
nodes of the bus:

  - C{P people}: a hash from the key of a person's name (see
    L{sockserve.chat.names.nameKey}) to C{NODE LF NAME};
  - C{P node:NODE}: the keys of the people a node holds;
  - C{P nodes}: a sorted set of nodes by the time, in Redis's clock, after
    which a node that has not refreshed its entry is gone;
  - C{P guests}: the number of the last default name given (C{guestN});
  - C{P epoch}: changes when Redis lost its data;
  - C{P rooms}: a hash from a room's key (its name in lower case) to its
    name, for every room that has members;
  - C{P noderooms:NODE}: the keys of the rooms a node has members in;
  - C{P inbox:NODE}: the private messages for a node's people (a stream),
    and C{P inseqs:NODE}, the last batch number each node put there.

Each room's keys share one hash slot, C{P {ROOM}:} (the braces), as in
sockserve 1.0: C{stream} (the room's events), C{members} (a hash from the
key of a member's name to C{NODE LF NAME}), C{seqs} (the last batch number
each node published), C{offset} (the bytes of payload published so far:
each entry carries the total after it, C{o}), C{progress} (a hash from a
node to the offset of the last entry it read: how far behind the slowest
node is, in bytes) and C{topic} (its last C{t} event, see
L{sockserve.bus.codec}). An empty room is forgotten: it leaves C{rooms},
and its keys expire after a while unless someone joins it again.

Names and lines are arguments, never part of a key; the only keys made of
an argument are the node's own (whose id the node makes itself) and a
room's, whose name is checked (letters, digits, C{- _ .}) before it is used.
The key of a name is computed by the node and passed with it: the scripts
never fold names themselves (Lua's C{string.lower} and Python's disagree
beyond ASCII); the one key a script makes, a default name's, follows
L{nameKey}'s rule for the digits 0 and 1.
"""

from __future__ import annotations

from sockserve.bus.codec import VERSION

# Shared helpers.
_COMMON = (
    """
local function heldBy(held, node)
  return held and string.sub(held, 1, #node + 1) == node .. '\\n'
end

local function roomPrefix(P, room)
  return P .. '{' .. room .. '}:'
end

local ROOM_KEYS = {'stream', 'seqs', 'offset', 'progress', 'members', 'topic'}

local function append(R, maxlen, node, seq, payload)
  local total = redis.call('INCRBY', R .. 'offset', #payload)
  redis.call('XADD', R .. 'stream', 'MAXLEN', '~', maxlen, '*',
    'n', node, 's', seq, 'v', '"""
    + str(VERSION)
    + """', 'e', payload, 'o', total)
  return total
end

local function forgetIfEmpty(P, room, keep)
  local R = roomPrefix(P, room)
  if redis.call('HLEN', R .. 'members') == 0 then
    redis.call('HDEL', P .. 'rooms', room)
    for _, k in ipairs(ROOM_KEYS) do redis.call('PEXPIRE', R .. k, keep) end
  end
end

local function open(P, room, name)
  local R = roomPrefix(P, room)
  redis.call('HSET', P .. 'rooms', room, name)
  for _, k in ipairs(ROOM_KEYS) do redis.call('PERSIST', R .. k) end
end

local function snapshot(P, room)
  local R = roomPrefix(P, room)
  local last, deleted = '0-0', '0-0'
  if redis.call('EXISTS', R .. 'stream') == 1 then
    local info = redis.call('XINFO', 'STREAM', R .. 'stream')
    for i = 1, #info, 2 do
      if info[i] == 'last-generated-id' then last = info[i + 1] end
      if info[i] == 'max-deleted-entry-id' then deleted = info[i + 1] end
    end
  end
  local offset = redis.call('GET', R .. 'offset') or '0'
  return {last, deleted, offset, redis.call('HVALS', R .. 'members'),
    redis.call('GET', R .. 'topic') or ''}
end

-- The members of room held by node d: {keys}, {names}.
local function heldIn(P, room, d)
  local all = redis.call('HGETALL', roomPrefix(P, room) .. 'members')
  local keys, names = {}, {}
  for i = 1, #all, 2 do
    if heldBy(all[i + 1], d) then
      table.insert(keys, all[i])
      table.insert(names, string.sub(all[i + 1], #d + 2))
    end
  end
  return keys, names
end

-- Node d leaves room: its members there leave (their departure published
-- first: a Redis out of memory refuses it before anything else changes).
local function leaveRoom(P, room, d, maxlen, keep)
  local R = roomPrefix(P, room)
  local keys, names = heldIn(P, room, d)
  if #names > 0 then
    append(R, maxlen, 'gone:' .. d, '0', 'x\\31' .. table.concat(names, '\\31'))
    for _, key in ipairs(keys) do redis.call('HDEL', R .. 'members', key) end
  end
  redis.call('HDEL', R .. 'seqs', d)
  redis.call('HDEL', R .. 'progress', d)
  redis.call('SREM', P .. 'noderooms:' .. d, room)
  forgetIfEmpty(P, room, keep)
end

-- Node d is gone: its members leave every room, its people their names.
local function depart(P, d, maxlen, keep)
  for _, room in ipairs(redis.call('SMEMBERS', P .. 'noderooms:' .. d)) do
    leaveRoom(P, room, d, maxlen, keep)
  end
  redis.call('DEL', P .. 'noderooms:' .. d)
  for _, key in ipairs(redis.call('SMEMBERS', P .. 'node:' .. d)) do
    if heldBy(redis.call('HGET', P .. 'people', key), d) then
      redis.call('HDEL', P .. 'people', key)
    end
  end
  redis.call('DEL', P .. 'node:' .. d, P .. 'inbox:' .. d, P .. 'inseqs:' .. d)
  redis.call('ZREM', P .. 'nodes', d)
end

-- Give a default name (guestN), free on the bus.
local function guest(P)
  for _ = 1, 1000 do
    local n = redis.call('INCR', P .. 'guests')
    local digits = string.gsub(tostring(n), '[01]', {['0'] = 'o', ['1'] = 'l'})
    local key = 'guest' .. digits
    if redis.call('HEXISTS', P .. 'people', key) == 0 then
      return 'guest' .. n, key
    end
  end
  return nil, nil
end

-- The offset of the slowest node in a room (the least any node in the bus
-- reported for it), or -1 if none reported.
local function slowest(P, room)
  local nodes = redis.call('ZRANGE', P .. 'nodes', 0, -1)
  local low = -1
  if #nodes > 0 then
    local offsets = redis.call('HMGET', roomPrefix(P, room) .. 'progress',
      unpack(nodes))
    for _, o in ipairs(offsets) do
      if o then
        local v = tonumber(o)
        if low < 0 or v < low then low = v end
      end
    end
  end
  return low
end
"""
)

# ARGV: P, node, ttl in ms, a new epoch (used if there is none), a stream's
# length, 1 when the node (re)joins, ms an empty room's keys are kept.
# Refresh the node (a node removed as gone is added again only when it
# rejoins: a heartbeat sent before a stall must not revive it); remove
# nodes past their time (their members leave). Returns {epoch, 1 if the
# node was known (not removed as gone), Redis's time in ms}. Allowed while
# Redis is out of memory: refreshing grows nothing, and a full Redis must
# not make every node count the others gone.
HEARTBEAT = (
    "#!lua flags=allow-oom\n"
    + _COMMON
    + """
local P, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local proposed, maxlen, keep = ARGV[4], ARGV[5], ARGV[7]
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
  depart(P, d, maxlen, keep)
end
return {epoch, known and 1 or 0, tostring(now)}
"""
)

# ARGV: P, node, a stream's length, ms an empty room's keys are kept. The
# node is stopping: its members leave, its people go.
DEPART = (
    _COMMON
    + """
depart(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
"""
)

# ARGV: P, node, a name and its key, or two empty strings for a default
# name. Give a person of the node a name: {'ok', name}, {'taken', holder's
# name}, or {'gone'} if the node itself was removed (it must rejoin).
CLAIM = (
    _COMMON
    + """
local P, node, name, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not redis.call('ZSCORE', P .. 'nodes', node) then return {'gone'} end
if name == '' then
  name, key = guest(P)
  if not name then return {'taken', ''} end
else
  local held = redis.call('HGET', P .. 'people', key)
  if held then return {'taken', string.sub(held, string.find(held, '\\n') + 1)} end
end
redis.call('HSET', P .. 'people', key, node .. '\\n' .. name)
redis.call('SADD', P .. 'node:' .. node, key)
return {'ok', name}
"""
)

# ARGV: P, node, the key of a name a person of the node no longer has.
RELEASE = (
    _COMMON
    + """
local P, node, key = ARGV[1], ARGV[2], ARGV[3]
if heldBy(redis.call('HGET', P .. 'people', key), node) then
  redis.call('HDEL', P .. 'people', key)
end
redis.call('SREM', P .. 'node:' .. node, key)
return 1
"""
)

# ARGV: P, node, the old name's key, the new name, its key, then the keys
# of the rooms the person is in. Rename a person of the node, everywhere:
# {'ok'}, {'taken', holder's name} or {'gone'}.
RENAME = (
    _COMMON
    + """
local P, node, oldKey, new, newKey = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not redis.call('ZSCORE', P .. 'nodes', node) then return {'gone'} end
if oldKey ~= newKey then
  local held = redis.call('HGET', P .. 'people', newKey)
  if held then return {'taken', string.sub(held, string.find(held, '\\n') + 1)} end
end
if heldBy(redis.call('HGET', P .. 'people', oldKey), node) then
  redis.call('HDEL', P .. 'people', oldKey)
  redis.call('SREM', P .. 'node:' .. node, oldKey)
end
redis.call('HSET', P .. 'people', newKey, node .. '\\n' .. new)
redis.call('SADD', P .. 'node:' .. node, newKey)
for i = 6, #ARGV do
  local R = roomPrefix(P, ARGV[i])
  if heldBy(redis.call('HGET', R .. 'members', oldKey), node) then
    redis.call('HDEL', R .. 'members', oldKey)
  end
  redis.call('HSET', R .. 'members', newKey, node .. '\\n' .. new)
end
return {'ok'}
"""
)

# ARGV: P, node, the room's key, its name, the member's key, its name, the
# room's capacity, the most rooms there may be (the default room, whose key
# is the last argument, always may, and is not counted), 1 if the node wants
# the room's snapshot (its first member there). Admit a member of the node to
# a room (made if it is new): {'ok'} (with the snapshot and the room's name
# as it was made, if asked), {'full'}, {'toomany'} or {'gone'}.
JOIN = (
    _COMMON
    + """
local P, node, room, roomName = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key, name = ARGV[5], ARGV[6]
local capacity, maxRooms = tonumber(ARGV[7]), tonumber(ARGV[8])
if not redis.call('ZSCORE', P .. 'nodes', node) then return {'gone'} end
local R = roomPrefix(P, room)
if redis.call('HEXISTS', P .. 'rooms', room) == 0 then
  local made = redis.call('HLEN', P .. 'rooms')
  if redis.call('HEXISTS', P .. 'rooms', ARGV[10]) == 1 then made = made - 1 end
  if room ~= ARGV[10] and made >= maxRooms then return {'toomany'} end
  open(P, room, roomName)
end
if redis.call('HEXISTS', R .. 'members', key) == 0
    and redis.call('HLEN', R .. 'members') >= capacity then
  return {'full'}
end
redis.call('HSET', R .. 'members', key, node .. '\\n' .. name)
redis.call('SADD', P .. 'noderooms:' .. node, room)
if ARGV[9] == '1' then
  return {'ok', snapshot(P, room), redis.call('HGET', P .. 'rooms', room)}
end
return {'ok'}
"""
)

# ARGV: P, node, the room's key, batch number, payload, a stream's length,
# ms an empty room's keys are kept, 1 if the node may have no members
# left there after this batch (it is then taken out of the room's readers
# unless it has), then the keys of the names of the members who
# left in the batch. Publish a batch once: a batch whose number is not
# above the node's last is a retry of one already published, and is
# dropped. Returns {1 (0 for a retry), the offset, the slowest node's
# offset}.
PUBLISH = (
    _COMMON
    + """
local P, node, room, seq = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local payload, maxlen, keep = ARGV[5], ARGV[6], ARGV[7]
local R = roomPrefix(P, room)
local last = tonumber(redis.call('HGET', R .. 'seqs', node) or '0')
if seq <= last then
  return {0, tonumber(redis.call('GET', R .. 'offset') or '0'), slowest(P, room)}
end
redis.call('HSET', R .. 'seqs', node, ARGV[4])
local total = append(R, maxlen, node, ARGV[4], payload)
for i = 9, #ARGV do
  local key = ARGV[i]
  if heldBy(redis.call('HGET', R .. 'members', key), node) then
    redis.call('HDEL', R .. 'members', key)
  end
end
if ARGV[8] == '1' and #heldIn(P, room, node) == 0 then
  redis.call('SREM', P .. 'noderooms:' .. node, room)
  redis.call('HDEL', R .. 'progress', node)
end
forgetIfEmpty(P, room, keep)
return {1, total, slowest(P, room)}
"""
)

# ARGV: P, node, batch number, the recipient's key, payload, an inbox's
# length. Put a private message in the inbox of the recipient's node, once:
# {'ok', the recipient's name}, {'dup', name} for a retry, {'nobody'}.
TELL = (
    _COMMON
    + """
local P, node, seq, key = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local payload, maxlen = ARGV[5], ARGV[6]
local held = redis.call('HGET', P .. 'people', key)
if not held then return {'nobody'} end
local cut = string.find(held, '\\n')
local target, name = string.sub(held, 1, cut - 1), string.sub(held, cut + 1)
local seqs = P .. 'inseqs:' .. target
if seq <= tonumber(redis.call('HGET', seqs, node) or '0') then
  return {'dup', name}
end
redis.call('HSET', seqs, node, ARGV[3])
redis.call('XADD', P .. 'inbox:' .. target, 'MAXLEN', '~', maxlen, '*',
  'n', node, 's', ARGV[3], 'v', '"""
    + str(VERSION)
    + """', 'e', payload)
return {'ok', name}
"""
)

# ARGV: P, node, then pairs of a room's key and the offset of the last
# entry the node read there ('' if it does not know it yet). Note how far
# the node has read (if it is in the bus); returns, per room, {the offset,
# the slowest node's offset}. Allowed while Redis is out of memory.
PROGRESS = (
    "#!lua flags=allow-oom\n"
    + _COMMON
    + """
local P, node = ARGV[1], ARGV[2]
local live = redis.call('ZSCORE', P .. 'nodes', node)
local result = {}
for i = 3, #ARGV, 2 do
  local R = roomPrefix(P, ARGV[i])
  if ARGV[i + 1] ~= '' and live then
    redis.call('HSET', R .. 'progress', node, ARGV[i + 1])
  end
  table.insert(result, {tonumber(redis.call('GET', R .. 'offset') or '0'),
    slowest(P, ARGV[i])})
end
return result
"""
)

# ARGV: P, node, a stream's length, ms an empty room's keys are kept, the
# number of people N, then N pairs of a name and its key, then, per room, its
# key, its name, the number of its members here M, and M pairs of a
# member's key and name. (Re)register the node's people and their rooms
# after the node (re)connected: a name another node took meanwhile is
# replaced by a default name. The node's people and memberships that are
# not listed are released (its members leave those rooms). Returns {the
# names as registered, in order; per room listed, its snapshot}.
REJOIN = (
    _COMMON
    + """
local P, node, maxlen, keep = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local mine = P .. 'node:' .. node
local wanted, names, renamed = {}, {}, {}
local people = tonumber(ARGV[5])
local i = 6
for _ = 1, people do
  local name, key = ARGV[i], ARGV[i + 1]
  i = i + 2
  local held = redis.call('HGET', P .. 'people', key)
  if (held and not heldBy(held, node)) or wanted[key] then
    local newName, newKey = guest(P)
    renamed[key] = {newName, newKey}
    name, key = newName, newKey
  end
  redis.call('HSET', P .. 'people', key, node .. '\\n' .. name)
  wanted[key] = true
  table.insert(names, name)
end
for _, key in ipairs(redis.call('SMEMBERS', mine)) do
  if not wanted[key] and heldBy(redis.call('HGET', P .. 'people', key), node) then
    redis.call('HDEL', P .. 'people', key)
  end
end
redis.call('DEL', mine)
for key in pairs(wanted) do redis.call('SADD', mine, key) end
local listed, snapshots = {}, {}
while i <= #ARGV do
  local room, roomName, count = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  listed[room] = true
  if redis.call('HEXISTS', P .. 'rooms', room) == 0 then open(P, room, roomName) end
  local R = roomPrefix(P, room)
  local keys = heldIn(P, room, node)
  local here = {}
  for _ = 1, count do
    local key, name = ARGV[i], ARGV[i + 1]
    i = i + 2
    if renamed[key] then name, key = renamed[key][1], renamed[key][2] end
    redis.call('HSET', R .. 'members', key, node .. '\\n' .. name)
    here[key] = true
  end
  for _, key in ipairs(keys) do
    if not here[key] then redis.call('HDEL', R .. 'members', key) end
  end
  redis.call('SADD', P .. 'noderooms:' .. node, room)
  table.insert(snapshots, snapshot(P, room))
end
for _, room in ipairs(redis.call('SMEMBERS', P .. 'noderooms:' .. node)) do
  if not listed[room] then leaveRoom(P, room, node, maxlen, keep) end
end
return {names, snapshots}
"""
)

# ARGV: P, node. Every room, as {key, name, members}.
ROOMS = """
local P = ARGV[1]
local all = redis.call('HGETALL', P .. 'rooms')
local result = {}
for i = 1, #all, 2 do
  local members = redis.call('HLEN', P .. '{' .. all[i] .. '}:members')
  table.insert(result, {all[i], all[i + 1], members})
end
return result
"""

# ARGV: P, node, the room's key, its topic (a t event, as the stream has it).
# Keep a room's topic for the nodes that load the room later; the change
# itself goes to the nodes that hold it in the room's stream.
TOPIC = (
    _COMMON
    + """
local P, node, room, topic = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('HEXISTS', P .. 'rooms', room) == 0 then return 0 end
redis.call('SET', roomPrefix(P, room) .. 'topic', topic)
return 1
"""
)

SCRIPTS = {
    "heartbeat": HEARTBEAT,
    "depart": DEPART,
    "claim": CLAIM,
    "release": RELEASE,
    "rename": RENAME,
    "join": JOIN,
    "publish": PUBLISH,
    "tell": TELL,
    "progress": PROGRESS,
    "rejoin": REJOIN,
    "rooms": ROOMS,
    "topic": TOPIC,
}
