/**
 * The Lua scripts of the Redis inbox (redis-inbox.ts): its claims, marks
 * (which also ack the stream entries of a transport on the same server),
 * renewals and pruning. Run them through `runScript` (scripts.ts).
 */
export const inboxScripts = {
  /**
   * KEYS: marks. ARGV: claim ms, then one claim value per mark. Claims each
   * message for one handler run (`SET … NX GET`: one command, Redis 7.0+).
   * Returns one letter per mark: `c` claimed, `d` done, `b` busy (one reply
   * string for the batch, not one per mark), then, when any is busy, a space
   * and the `PTTL` of each busy mark's claim, in order, space-separated (-1:
   * a claim without a TTL).
   */
  inboxClaim: `
local out = {}
local ttls = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1], 'GET')
  if not value then
    out[i] = 'c'
  elseif string.sub(value, 1, 2) == 'd:' then
    out[i] = 'd'
  else
    out[i] = 'b'
    ttls[#ttls + 1] = redis.call('PTTL', key)
  end
end
if #ttls == 0 then return table.concat(out) end
return table.concat(out) .. ' ' .. table.concat(ttls, ' ')`,

  /**
   * Writes the marks of a batch of runs, and acks their stream entries.
   * KEYS: per ack group (the entries of one partition of one reader) its
   * stream and partition lease, then the marks: each ack group's in turn,
   * then those with no ack. ARGV: the number of ack groups G; per ack group
   * its consumer group, lease token and number of marks; then per mark its
   * claim value, mark value and ms, followed by its entry id when it is in an
   * ack group. A mark replaces the run's claim while the claim is the run's,
   * and is written where the claim ran out with nothing in its place (no
   * other run took the message meanwhile); another run's claim or mark is
   * left to it. An ack group whose lease holds another token or none (the
   * partition moved to another reader, or its lease ran out) writes neither
   * marks nor acks and drops the claims, so the next holder's runs apply the
   * messages; the others' entries are acked with one `XACK` per group (in
   * chunks, `unpack` has a limit). Returns per ack group 1, or when fenced off
   * 0 (another holds the lease) or -2 (none does: it ran out); then the
   * positions (from 1, among the marks) of the runs not fenced off whose
   * claim was no longer theirs.
   */
  inboxMark: `
local groups = tonumber(ARGV[1])
local k = groups * 2
local a = 1 + groups * 3
local out = {}
local lost = {}
local function mark(key, position)
  local value = redis.call('GET', key)
  if value == ARGV[a + 1] or not value then redis.call('SET', key, ARGV[a + 2], 'PX', ARGV[a + 3]) end
  if value ~= ARGV[a + 1] then lost[#lost + 1] = position end
end
for g = 1, groups do
  local n = tonumber(ARGV[g * 3 + 1])
  local holder = redis.call('GET', KEYS[g * 2])
  if holder == ARGV[g * 3] then
    local ids = {}
    for i = 1, n do
      mark(KEYS[k + i], k - groups * 2 + i)
      ids[#ids + 1] = ARGV[a + 4]
      if #ids == 1000 or i == n then
        redis.call('XACK', KEYS[g * 2 - 1], ARGV[g * 3 - 1], unpack(ids))
        ids = {}
      end
      a = a + 4
    end
    out[g] = 1
  else
    for i = 1, n do
      local key = KEYS[k + i]
      if redis.call('GET', key) == ARGV[a + 1] then redis.call('DEL', key) end
      a = a + 4
    end
    out[g] = holder and 0 or -2
  end
  k = k + n
end
for i = k + 1, #KEYS do
  mark(KEYS[i], i - groups * 2)
  a = a + 3
end
return {out, lost}`,

  /**
   * KEYS: marks. ARGV: ms, then one claim value per mark. Renews each claim
   * that is still the run's; returns the positions (from 1) of those that are
   * not (expired, or another run's now).
   */
  inboxRenew: `
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ARGV[1]) else lost[#lost + 1] = i end
end
return lost`,

  /** KEYS: mark. ARGV: claim value, then a mark and its ms ('' to drop the claim), or ms to renew. */
  inboxSettle: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
elseif ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1`,

  /** KEYS: marks. ARGV: before ms. Deletes the done marks older than it. */
  inboxPrune: `
local removed = 0
for _, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if value and string.sub(value, 1, 2) == 'd:' and tonumber(string.sub(value, 3)) < tonumber(ARGV[1]) then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed`,
} as const;
