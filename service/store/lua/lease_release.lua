-- Gives a lease up, in one atomic step, only when the caller holds it.
--
-- KEYS[1]  the lease: its value is the holder's token
-- ARGV[1]  token of the caller
--
-- Returns 1 when the caller's lease was removed, 0 when another holds it or none does.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
