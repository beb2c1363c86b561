"""The pure core of the service: event contracts, the asset registry's rules and state.

Nothing in this package performs I/O or imports faust, redis, aiokafka or asyncio, so
every rule can be unit-tested in isolation and reused by any entrypoint. The errors it
raises (`DecodeError`) live in `service.errors`, which imports nothing but the standard
library and `service.domain.enums` (tests/unit/test_errors.py checks both).
"""
