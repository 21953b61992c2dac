"""gunicorn settings for scripts/serve-production (any of them can be overridden on its command line)."""
from __future__ import annotations

from typing import Any

# a million-row import or a district's commit runs longer than gunicorn's default 30 s
timeout = 300
# the access log says what was asked and how it went, not who asked or what they sent: no client
# address, no query string (positions, tokens in Open311's api_key), no user agent or referrer
access_log_format = '%(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


def post_worker_init(worker: Any) -> None:
    """Each worker fills its caches in a thread as it starts (see app.warm_in_background)."""
    from app import warm_in_background
    warm_in_background(worker.wsgi, worker.log)
