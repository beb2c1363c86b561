"""The pure core of the service: event contracts, the asset registry's rules and state.

Nothing in this package performs I/O or imports faust, redis or asyncio, so every
rule can be unit-tested in isolation and reused by any entrypoint.
"""
