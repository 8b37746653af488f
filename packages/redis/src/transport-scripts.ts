/**
 * Lua setting `now` to Redis's clock in ms. The delayed set and the readers'
 * registrations are timed by it: the clocks of the processes sharing them may
 * disagree.
 */
const NOW_MS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * The Lua scripts of the transport. Each runs atomically on the server. Some
 * touch keys they read from their arguments (a delayed message names its
 * stream): the transport targets one Redis server, not a cluster. Run them
 * through `runScript` (scripts.ts).
 */
export const transportScripts = {
  /**
   * KEYS: groups set, partition counts hash, then the topic's partition streams.
   * ARGV: group, start id (`$`: from now on; `0`: all the stream holds, when the
   * server lost the group), topic, partition count. Returns `partitions <n>`
   * and changes nothing when the topic's recorded count is another; else
   * creates the group on each stream (BUSYGROUP is fine), then records the
   * count and the group. With neither a count nor a group recorded, the
   * topic's first declaration here, a stream that holds entries already was
   * written after the server lost its data (by a producer that had seen groups
   * before: nothing is published to a topic before its first group): the group
   * starts at `0`, so those entries are its. With groups recorded and no count
   * (the count removed by hand to change it), the entries are those groups':
   * a new group starts at `$`, as ever.
   */
  declare: `
local recorded = redis.call('HGET', KEYS[2], ARGV[3])
if recorded and recorded ~= ARGV[4] then return 'partitions ' .. recorded end
local start = ARGV[2]
if not recorded and redis.call('SCARD', KEYS[1]) == 0 then
  for i = 3, #KEYS do
    if redis.call('XLEN', KEYS[i]) > 0 then start = '0' end
  end
end
for i = 3, #KEYS do
  local r = redis.pcall('XGROUP', 'CREATE', KEYS[i], ARGV[1], start, 'MKSTREAM')
  if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then return r end
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('SADD', KEYS[1], ARGV[1])
return 1`,

  /**
   * KEYS: partition streams. ARGV: the one group the entries are for ('' =
   * every group), then per stream how many messages, then the messages' JSON,
   * stream by stream, each stream's in publish order. One `XADD` each, in
   * order: a publish is one call per batch instead of one command per message.
   */
  append: `
local only = ARGV[1]
local a = 1 + #KEYS
for k = 1, #KEYS do
  for _ = 1, tonumber(ARGV[1 + k]) do
    a = a + 1
    if only == '' then
      redis.call('XADD', KEYS[k], '*', 'm', ARGV[a])
    else
      redis.call('XADD', KEYS[k], '*', 'm', ARGV[a], 'o', only)
    end
  end
end
return a - 1 - #KEYS`,

  /**
   * KEYS: stream, delayed set, partition lease. ARGV: group, entry id, delay
   * ms, member, lease token. While the lease holds the token (the reader still
   * has the partition), acks the entry and schedules its copy `delay ms` from
   * now by Redis's clock: 1; 0 (nothing done) when the entry was not pending;
   * when fenced off (nothing done), as `ackFenced`: -1 when another holds the
   * lease, -2 when none does (it ran out).
   */
  release: `${NOW_MS}
local holder = redis.call('GET', KEYS[3])
if holder ~= ARGV[5] then
  if holder then return -1 end
  return -2
end
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('ZADD', KEYS[1 + 1], string.format('%.0f', now + tonumber(ARGV[3])), ARGV[4])
return 1`,

  /** KEYS: delayed set. ARGV: delay ms, member. Schedules a published message `delay ms` from now by Redis's clock. */
  schedule: `${NOW_MS}
return redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[1])), ARGV[2])`,

  /**
   * KEYS: delayed set. ARGV: limit. Moves what is due by Redis's clock into its
   * stream, oldest first; returns how many.
   */
  moveDue: `${NOW_MS}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local item = cjson.decode(member)
  if item.o ~= '' then
    redis.call('XADD', item.s, '*', 'm', item.m, 'n', tostring(item.n), 'o', item.o)
  else
    redis.call('XADD', item.s, '*', 'm', item.m)
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due`,

  /**
   * KEYS: a group's readers set. ARGV: reader, lease ms. Registers the reader
   * until now + lease ms and drops the registrations that ended, both by
   * Redis's clock (the readers' clocks may disagree); returns how many readers
   * are registered.
   */
  register: `${NOW_MS}
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZCARD', KEYS[1])`,

  /** KEYS: lease. ARGV: holder, ttl ms. Takes the lease when free or already the holder's: 1, else 0. */
  acquire: `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`,

  /**
   * KEYS: lease. ARGV: holder, ttl ms. Renews the lease while `holder` has it:
   * 1; else 0 when another holds it, -2 when none does (it ran out).
   */
  renew: `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
return -2`,

  /**
   * KEYS: groups set, the group's readers set, partition counts hash, then
   * the topic's partition streams, then their leases (as many). ARGV: group,
   * topic, partition count. Refuses: `{'partitions', n}` when the topic's
   * recorded count is another (changing nothing); while the group is read,
   * `{'readers', n}` when n registrations have not ended by Redis's clock,
   * `{'lease', p}` while partition p's lease is held. Else destroys the group
   * on each stream, forgets it and its readers, deletes the streams when no
   * group of the topic is left, and returns `{'removed', 1}` (`0`: it was not
   * declared).
   */
  removeGroup: `${NOW_MS}
local n = (#KEYS - 3) / 2
local recorded = redis.call('HGET', KEYS[3], ARGV[2])
if recorded and recorded ~= ARGV[3] then return {'partitions', tonumber(recorded)} end
local live = redis.call('ZCOUNT', KEYS[2], '(' .. string.format('%.0f', now), '+inf')
if live > 0 then return {'readers', live} end
for p = 1, n do
  if redis.call('EXISTS', KEYS[3 + n + p]) == 1 then return {'lease', p - 1} end
end
local found = redis.call('SREM', KEYS[1], ARGV[1])
for p = 1, n do
  local r = redis.pcall('XGROUP', 'DESTROY', KEYS[3 + p], ARGV[1])
  if type(r) == 'number' and r > 0 then found = 1 end
end
redis.call('DEL', KEYS[2])
if redis.call('SCARD', KEYS[1]) == 0 then
  for p = 1, n do redis.call('DEL', KEYS[3 + p]) end
end
return {'removed', found}`,

  /**
   * KEYS: groups set, then the topic's partition streams. Deletes the streams
   * when the topic has no group: what a mover appended to them after its last
   * group was removed, before its delayed messages went.
   */
  dropStreamsWithoutGroups: `
if redis.call('SCARD', KEYS[1]) > 0 then return 0 end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1`,

  /**
   * KEYS: stream, partition lease. ARGV: group, lease token, entry ids. Acks
   * the entries while the lease holds the token (the reader still has the
   * partition): the count acked; acking nothing, -1 when another holds it, -2
   * when none does (it ran out).
   */
  ackFenced: `
local holder = redis.call('GET', KEYS[2])
if holder ~= ARGV[2] then
  if holder then return -1 end
  return -2
end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3))`,

  /**
   * KEYS: stream, lease. ARGV: group, consumer, returned consumer, holder,
   * then pairs of entry id and delivery count. Hands the consumer's pending
   * entries to the returned consumer (claimed by the partition's next
   * holder): an entry paired sets its delivery count (`RETRYCOUNT`: the
   * hand-outs the consumer knows of, where its reads and claims counted one
   * each, handed out or not), any other keeps its own. Removes the consumer,
   * frees the lease; returns how many entries moved.
   */
  handBack: `
local counts = {}
for i = 5, #ARGV - 1, 2 do counts[ARGV[i]] = ARGV[i + 1] end
local moved = 0
while true do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 500, ARGV[2])
  if #pending == 0 then break end
  local order = {}
  local ids = {}
  for _, p in ipairs(pending) do
    local count = counts[p[1]] or ''
    if not ids[count] then
      ids[count] = {}
      order[#order + 1] = count
    end
    table.insert(ids[count], p[1])
  end
  for _, count in ipairs(order) do
    local claim = ids[count]
    if count ~= '' then
      claim[#claim + 1] = 'RETRYCOUNT'
      claim[#claim + 1] = count
    end
    claim[#claim + 1] = 'JUSTID'
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, unpack(claim))
  end
  moved = moved + #pending
end
redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return moved`,

  /**
   * KEYS: stream. ARGV: idle ms. Trims the stream below what its slowest group
   * still needs (its oldest pending entry, else its last delivered one) and
   * removes the groups' consumers idle longer than `idle ms` with nothing pending.
   * Returns the entries trimmed.
   */
  trim: `
local function less(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local floor = nil
for _, row in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local g = {}
  for i = 1, #row, 2 do g[row[i]] = row[i + 1] end
  local needed = g['last-delivered-id']
  if g['pending'] > 0 then needed = redis.call('XPENDING', KEYS[1], g['name'])[2] end
  if floor == nil or less(needed, floor) then floor = needed end
  for _, crow in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], g['name'])) do
    local c = {}
    for i = 1, #crow, 2 do c[crow[i]] = crow[i + 1] end
    if c['pending'] == 0 and c['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], g['name'], c['name'])
    end
  end
end
if floor == nil then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', floor)`,
} as const;
