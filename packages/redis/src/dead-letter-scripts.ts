/**
 * The Lua scripts of the Redis dead-letter store (redis-dead-letters.ts):
 * adding a record as its message's live one, refreshing it, updating its
 * state. Run them through `runScript` (scripts.ts).
 */
export const deadLetterScripts = {
  /**
   * KEYS: records, live index. ARGV: id, json, live key. Adds a dead letter
   * and makes it the live one of its consumer, topic and message: 1; 0 when
   * a record with that id is kept already; while another is live, changes
   * nothing and returns that record's id and JSON (the caller refreshes it:
   * `deadRefresh`).
   */
  deadAdd: `
local live = redis.call('HGET', KEYS[2], ARGV[3])
if live then
  local json = redis.call('HGET', KEYS[1], live)
  if json then return {live, json} end
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
return 1`,

  /**
   * KEYS: records, live index. ARGV: live id, its JSON as read, new JSON,
   * live key. Replaces the live record while it is still live and as read: 1;
   * else 0 (the caller looks again).
   */
  deadRefresh: `
if redis.call('HGET', KEYS[2], ARGV[4]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`,

  /**
   * KEYS: records, live index. ARGV: id, json, live key, state, the
   * `deadLetteredAt` it was read with, the state it was read with, its
   * redrives as read (a JSON array of ISO strings; empty: not compared).
   * Stores the record while the stored one is still as read (1; else 0,
   * nothing written), a dead record only while no other record of its message
   * is live; a record no longer dead leaves the index.
   */
  deadUpdate: `
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return 0 end
local read = cjson.decode(stored)
if read.state ~= ARGV[6] or read.deadLetteredAt ~= ARGV[5] then return 0 end
if ARGV[7] ~= '' then
  local expected = cjson.decode(ARGV[7])
  if #read.redrives ~= #expected then return 0 end
  for i, at in ipairs(expected) do
    if read.redrives[i] ~= at then return 0 end
  end
end
if ARGV[4] == 'dead' then
  local live = redis.call('HGET', KEYS[2], ARGV[3])
  if live and live ~= ARGV[1] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == 'dead' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
elseif redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[1] then
  redis.call('HDEL', KEYS[2], ARGV[3])
end
return 1`,
} as const;
