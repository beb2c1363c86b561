"""The app's real web stack (routes, middleware, problem details) over fake stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.config import Settings


@asynccontextmanager
async def serve_views(tmp_path: Path, **stores: Any) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the views, whose runtime holds only the settings and `stores`."""
    settings = Settings(data_dir=str(tmp_path))
    app = create_app(settings)
    app.runtime = SimpleNamespace(settings=settings, **stores)  # type: ignore[assignment]
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield client
