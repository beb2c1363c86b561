"""Which schedules a worker keeps: the board refresh only while it is allowed to."""

from __future__ import annotations

from service.app import create_app
from service.config import Settings


def timers(settings: Settings) -> set[str]:
    app = create_app(settings)
    # Faust keeps each function given to app.timer in its private _app_tasks (the version
    # of faust-streaming is pinned in pyproject.toml).
    return {task.__qualname__.rsplit(".", 1)[-1] for task in app._app_tasks}


def test_a_worker_refreshes_the_boards_unless_refresher_processes_alone_may() -> None:
    assert "refresh_leaderboards" in timers(Settings())
    alone = timers(Settings(leaderboard_refresh_in_worker=False))
    assert "refresh_leaderboards" not in alone
    assert "sweep_held_lifecycle_events" in alone, "the other schedules stay"
