-- Moves one asset's entry in a library's statistics and indexes, idempotently.
-- Every key shares the library's hash tag and is declared: the caller reads the stored
-- member first and declares the index keys of both entries (KEYS[7..]); when an index
-- key this script derives is not among them (the member changed in between), it returns
-- -1 before any write and the caller reads again.
--
-- KEYS[1]  stats hash: assets, bytes, media_type:<t>, status:<s>
-- KEYS[2]  members hash: asset_id -> {"rev": n, "entry": {...}} (no "entry" once removed)
-- KEYS[3]  assets sorted set (all scores 0: ordered by asset_id)
-- KEYS[4]  usage sorted set: assets used at least once, scored by minus their usage_count
-- KEYS[5]  contents hash: n:<sha256> (the library's assets with that content) and
--          b:<sha256> (the sum of their sizes)
-- KEYS[6]  waste sorted set: contents held more than once, scored by the bytes all but
--          one copy take (b - floor(b / n))
-- ARGV[1]  index key prefix (non-empty); indexes are <prefix>tag:<tag>,
--          <prefix>category:<c>, <prefix>status:<s>
-- ARGV[2]  asset_id (non-empty)
-- ARGV[3]  rev of the asset state this entry comes from: integer in [0, 2^53)
-- ARGV[4]  the new member JSON (with "rev", and "entry" unless the asset left the library);
--          an entry has file_size_bytes (integer in [0, 2^53)), media_type and status
--          (non-empty strings), tags and categories (arrays of non-empty strings), and
--          optionally usage_count (integer in [0, 2^53); absent counts as 0) and words
--          (an array of non-empty strings: the entry is indexed under <prefix>word:<w>
--          and, for each of its first 1..32 characters, <prefix>prefix:<p>) and
--          content_sha256 (a non-empty string: counted in KEYS[5] and KEYS[6])
-- KEYS[7..] the index keys of the stored entry and of the new one
--
-- Everything is checked before anything is written: the arguments, the stored member
-- the entry replaces, and that the library's `bytes` stays below 2^62 (HINCRBY fails
-- past 2^63 - 1, halfway through the writes, which Redis does not roll back). Bad input
-- is an error reply 'ERR bad input: <what>' and changes nothing.
-- Sizes are added with HINCRBY of their exact decimal digits: a size is exact in a
-- Lua double below 2^53, and the sum is kept by Redis as a 64-bit integer.
--
-- An entry from an older or equal rev than the stored one is ignored, so replays and
-- reordered projections never count twice. Returns 1 when applied, 0 when ignored, -1
-- when an index key is not declared.
local MAX_INT = 9007199254740991 -- 2^53 - 1: larger numbers are not exact in Lua
local MAX_PREFIX = 32 -- characters: MAX_PREFIX of service/domain/library.py
local MAX_BYTES = 2 ^ 62 -- far below 2^63 - 1, beyond the rounding of a double near it

local function bad(what)
  return redis.error_reply('ERR bad input: ' .. what)
end

local function whole(n)
  return type(n) == 'number' and n == n and n >= 0 and n <= MAX_INT and math.floor(n) == n
end

local function names(list)
  if type(list) ~= 'table' then
    return false
  end
  for _, name in ipairs(list) do
    if type(name) ~= 'string' or name == '' then
      return false
    end
  end
  return true
end

-- nil when the member is well-formed, otherwise what is wrong with it.
local function problem(member)
  if type(member) ~= 'table' then
    return 'must be a JSON object'
  end
  if not whole(member.rev) then
    return 'rev must be an integer in [0, 2^53)'
  end
  local entry = member.entry
  if entry == nil then
    return nil
  end
  if type(entry) ~= 'table' then
    return 'entry must be an object'
  end
  if not whole(entry.file_size_bytes) then
    return 'entry.file_size_bytes must be an integer in [0, 2^53)'
  end
  if type(entry.media_type) ~= 'string' or entry.media_type == '' then
    return 'entry.media_type must be a non-empty string'
  end
  if type(entry.status) ~= 'string' or entry.status == '' then
    return 'entry.status must be a non-empty string'
  end
  if not names(entry.tags) then
    return 'entry.tags must be an array of non-empty strings'
  end
  if not names(entry.categories) then
    return 'entry.categories must be an array of non-empty strings'
  end
  if entry.usage_count ~= nil and not whole(entry.usage_count) then
    return 'entry.usage_count must be an integer in [0, 2^53)'
  end
  if entry.words ~= nil and not names(entry.words) then
    return 'entry.words must be an array of non-empty strings'
  end
  if entry.content_sha256 ~= nil and (type(entry.content_sha256) ~= 'string'
      or entry.content_sha256 == '') then
    return 'entry.content_sha256 must be a non-empty string'
  end
  return nil
end

local function decode(text)
  if type(text) ~= 'string' then
    return false, nil
  end
  return pcall(cjson.decode, text)
end

if type(ARGV[1]) ~= 'string' or ARGV[1] == '' then
  return bad('ARGV[1] index key prefix must not be empty')
end
local asset = ARGV[2]
if type(asset) ~= 'string' or asset == '' then
  return bad('ARGV[2] asset_id must not be empty')
end
if type(ARGV[3]) ~= 'string' or not string.find(ARGV[3], '^%d+$')
    or tonumber(ARGV[3]) > MAX_INT then
  return bad('ARGV[3] rev must be an integer in [0, 2^53)')
end
local rev = tonumber(ARGV[3])
local ok, new = decode(ARGV[4])
if not ok then
  return bad('ARGV[4] member is not JSON')
end
local wrong = problem(new)
if wrong then
  return bad('ARGV[4] member ' .. wrong)
end

local stored = redis.call('HGET', KEYS[2], asset)
local old = nil
if stored then
  ok, old = decode(stored)
  if ok then
    wrong = problem(old)
  else
    wrong = 'is not JSON'
  end
  if wrong then
    return bad('the stored member of ' .. asset .. ' ' .. wrong .. ' (repair or delete it)')
  end
  if old.rev >= rev then
    return 0
  end
end

local function size(member)
  if member and member.entry then
    return member.entry.file_size_bytes
  end
  return 0
end

local total = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if total + size(new) - size(old) > MAX_BYTES then
  return bad('library total_bytes would pass 2^62 with ' .. string.format('%d', size(new)) ..
    ' more bytes')
end

-- The index keys that list an entry's asset (a set: key -> true).
local function indexes(entry)
  local keys = {}
  if not entry then
    return keys
  end
  keys[KEYS[3]] = true
  keys[ARGV[1] .. 'status:' .. entry.status] = true
  for _, tag in ipairs(entry.tags) do
    keys[ARGV[1] .. 'tag:' .. tag] = true
  end
  for _, category in ipairs(entry.categories) do
    keys[ARGV[1] .. 'category:' .. category] = true
  end
  for _, word in ipairs(entry.words or {}) do
    keys[ARGV[1] .. 'word:' .. word] = true
    local seen, chars = '', 0
    -- one UTF-8 character at a time, so that every prefix ends on a character boundary
    for char in string.gmatch(word, '[%z\1-\127\194-\244][\128-\191]*') do
      seen, chars = seen .. char, chars + 1
      if chars > MAX_PREFIX then
        break
      end
      keys[ARGV[1] .. 'prefix:' .. seen] = true
    end
  end
  return keys
end

local function count(field, delta)
  redis.call('HINCRBY', KEYS[1], field, string.format('%d', delta))
end

-- The counters, contents and usage of an entry, added (sign 1) or taken away (-1).
local function move(entry, sign)
  count('assets', sign)
  count('bytes', sign * entry.file_size_bytes)
  count('media_type:' .. entry.media_type, sign)
  count('status:' .. entry.status, sign)
  local sha = entry.content_sha256
  if sha then
    local n = redis.call('HINCRBY', KEYS[5], 'n:' .. sha, sign)
    local b = redis.call('HINCRBY', KEYS[5], 'b:' .. sha,
      string.format('%d', sign * entry.file_size_bytes))
    if n <= 0 then
      redis.call('HDEL', KEYS[5], 'n:' .. sha, 'b:' .. sha)
      redis.call('ZREM', KEYS[6], sha)
    elseif n == 1 then
      redis.call('ZREM', KEYS[6], sha)
    else
      redis.call('ZADD', KEYS[6], string.format('%d', b - math.floor(b / n)), sha)
    end
  end
  local used = entry.usage_count or 0
  if sign < 0 then
    redis.call('ZREM', KEYS[4], asset)
  elseif used > 0 then
    redis.call('ZADD', KEYS[4], string.format('%d', -used), asset)
  end
end

local before_entry = old and old.entry or nil
local before, after = indexes(before_entry), indexes(new.entry)
local declared = {}
for i = 3, #KEYS do
  declared[KEYS[i]] = true
end
for _, keys in ipairs({ before, after }) do
  for key in pairs(keys) do
    if not declared[key] then
      return -1
    end
  end
end

if before_entry then
  move(before_entry, -1)
end
if new.entry then
  move(new.entry, 1)
end
-- Indexes: only the keys that differ (a lifecycle event moves one status index, not
-- every word and prefix of the asset).
for key in pairs(before) do
  if not after[key] then
    redis.call('ZREM', key, asset)
  end
end
for key in pairs(after) do
  if not before[key] then
    redis.call('ZADD', key, 0, asset)
  end
end
redis.call('HSET', KEYS[2], asset, ARGV[4])
return 1
