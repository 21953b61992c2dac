"""gunicorn settings for scripts/serve-production (any of them can be overridden on its command line)."""
from __future__ import annotations

from typing import Any

# a million-row import or a district's commit runs longer than gunicorn's default 30 s
timeout = 300


def post_worker_init(worker: Any) -> None:
    """Each worker fills its caches in a thread as it starts (see app.warm_in_background)."""
    from app import warm_in_background
    warm_in_background(worker.wsgi, worker.log)
