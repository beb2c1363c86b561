"""A lease in Redis: at most one holder at a time, for a limited time.

The holder's token is the key's value and the key expires with the lease, so a holder
that dies frees it after at most its duration. Taking and extending (lease_hold.lua)
and giving up (lease_release.lua) are each one atomic step that checks the token.
"""

from __future__ import annotations

from typing import Any

from service.store.scripts import Scripts


class Lease:
    def __init__(self, key: str, scripts: Scripts) -> None:
        self._key = key
        self._scripts = scripts

    async def hold(self, token: str, seconds: float) -> bool:
        """Take the lease when free, or extend it when `token` holds it; False when
        another token holds it."""
        held: Any = await self._scripts.lease_hold(
            keys=[self._key], args=[token, max(1, int(seconds * 1000))]
        )
        return bool(held)

    async def release(self, token: str) -> None:
        """Give the lease up, if `token` holds it."""
        await self._scripts.lease_release(keys=[self._key], args=[token])
