"""gridmap's web edge: ``create_app()`` builds the Flask app; ``python app.py`` serves it.

Views live in ``gridmap/web`` (API and pages); the domain never imports Flask.
"""
from __future__ import annotations

import argparse
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from flask import Flask, current_app, request
from flask_babel import Babel

from gridmap.cli import cli, print_demo_accounts
from gridmap.config import Settings
from gridmap.service import Gridmap
from gridmap.storage import open_store
from gridmap.web import (
    IdConverter,
    accounts,
    api,
    auth,
    dashboard,
    editor,
    handlers,
    headers,
    mapdata,
    open311,
    openapi,
    pages,
    report,
    reportmap,
    review,
    stats,
)

ROOT = Path(__file__).resolve().parent
LANGUAGES = ("zh", "en")


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_path=str(ROOT / "instance"), template_folder="templates",
                static_folder="static")
    settings = Settings.from_env(instance_dir=Path(app.instance_path))
    app.config.from_mapping(GRIDMAP_SETTINGS=settings, MAX_CONTENT_LENGTH=settings.max_upload_mb * 1024 * 1024,
                            BABEL_TRANSLATION_DIRECTORIES=str(ROOT / "translations"))
    if test_config:
        app.config.from_mapping(test_config)
        settings = app.config["GRIDMAP_SETTINGS"]
    app.json.ensure_ascii = False
    app.json.sort_keys = False
    Babel(app, locale_selector=_locale, default_locale=settings.lang)
    service = Gridmap(open_store(settings.database_url), timezone=settings.timezone,
                      service_area=settings.service_area, tolerance_m2=settings.tolerance_m2,
                      deadlines=settings.deadlines)
    app.extensions["gridmap"] = service
    if settings.load_demo:
        _print_demo_accounts(service)
        app.before_request(_demo_loader(service))
    app.url_map.converters["id"] = IdConverter          # before the routes that use it
    auth.init(app)                                      # first: every request is checked before its view
    headers.init(app)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(mapdata.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(stats.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(reportmap.bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(report.bp)
    app.register_blueprint(openapi.bp)
    handlers.register(app)
    app.cli.add_command(cli)
    return app


def _print_demo_accounts(service: Gridmap) -> None:
    """A first run on an empty store (the demo's) makes one account per role and says their
    passwords, once; a store with data but no account is told how to make one."""
    if service.store.is_empty():
        print_demo_accounts(service.access.demo_accounts())
    elif not service.access.all():
        logging.getLogger(__name__).warning("no accounts yet: make one with `python -m gridmap create-user NAME "
                                            "--role admin`")


def _demo_loader(service: Gridmap) -> Callable[[], None]:
    """Load the demo on the first request if the store is empty — not at import time, so that
    `flask --app app gridmap load-demo` and the other commands see the store as it is."""
    lock, done = threading.Lock(), threading.Event()

    def load() -> None:
        if done.is_set():
            return
        with lock:
            if not done.is_set() and service.store.is_empty():
                logging.getLogger(__name__).info("empty store: loading the demo data")
                service.load_demo()
            done.set()
    return load


def warm_in_background(app: Flask, log: logging.Logger | None = None) -> None:
    """A server process fills its caches (layers, index, heat table, outlines) in a thread as it
    starts, not on its first visitors' time; ``python app.py`` and gunicorn (gunicorn.conf.py) call
    this, the CLI and the tests do not.  ``log`` (the server's) hears how it went."""
    threading.Thread(target=_warm, args=(app, log or logging.getLogger(__name__)), name="gridmap-warm",
                     daemon=True).start()


def _warm(app: Flask, log: logging.Logger) -> None:
    start = time.perf_counter()
    try:
        app.extensions["gridmap"].warm()
        mapdata.warm_outlines(app)
    except Exception:  # noqa: BLE001 - an empty or unreadable store shows itself on the first request
        log.exception("could not read the caches ahead of the first request")
    else:
        log.info("caches ready in %.1f s", time.perf_counter() - start)


def _locale() -> str:
    """``?lang=`` first (the switch), then the cookie it sets, then the deployment's default."""
    asked = request.args.get("lang") or request.cookies.get("lang")
    if asked in LANGUAGES:
        return asked
    return current_app.config["GRIDMAP_SETTINGS"].lang


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve gridmap.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--debug", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    warm_in_background(app)
    app.run(host=args.host, port=args.port, debug=args.debug, threaded=True)


if __name__ == "__main__":
    main()
