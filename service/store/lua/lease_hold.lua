-- Takes or extends a lease, in one atomic step.
--
-- KEYS[1]  the lease: its value is the holder's token
-- ARGV[1]  token of the caller (non-empty)
-- ARGV[2]  how long the lease lasts from now, in milliseconds (a positive integer)
--
-- 1. When the lease is free or already the caller's, set it to the caller's token for
--    ARGV[2] ms and return 1.
-- 2. Otherwise leave it to its holder and return 0.
local token, ttl = ARGV[1], tonumber(ARGV[2])
if type(token) ~= 'string' or token == '' then
  return redis.error_reply('ERR bad input: ARGV[1] token must be a non-empty string')
end
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return redis.error_reply('ERR bad input: ARGV[2] must be a positive integer of milliseconds')
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= token then
  return 0
end
redis.call('SET', KEYS[1], token, 'PX', ttl)
return 1
