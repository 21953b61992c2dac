"""The one error handler: domain errors become 4xx, as JSON for the API and a page for people."""
from __future__ import annotations

import logging

from flask import Flask, current_app, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ..errors import Conflict, GridmapError, InvalidInput, NotFound, PreconditionFailed
from . import error_body, nul_refused, tr

log = logging.getLogger(__name__)

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, PreconditionFailed: 412}


def register(app: Flask) -> None:
    app.before_request(_no_nul_characters)
    app.register_error_handler(GridmapError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.add_url_rule("/health", "health", _health)


def _health():
    """For load balancers and monitoring: 200 when the store answers, 503 when it does not."""
    try:
        current_app.extensions["gridmap"].store.versions()
    except Exception:  # noqa: BLE001 - any failure to read the store is "not healthy"
        log.exception("health check: the store did not answer")
        return {"status": "unavailable"}, 503
    return {"status": "ok"}


def _no_nul_characters() -> None:
    """A query or form value holding a NUL character is refused before any view sees it: text may
    not hold one (PostgreSQL cannot store it, so SQLite is not let to either).  JSON bodies are
    checked as they are read (:func:`~gridmap.web.json_payload`), files as they are parsed."""
    fields = [*request.args.items(multi=True)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields += request.form.items(multi=True)
    for name, value in fields:
        if any(isinstance(text, str) and "\x00" in text for text in (name, value)):
            raise InvalidInput(nul_refused(str(name)))


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _domain_error(error: GridmapError):
    status = next((code for cls, code in STATUS.items() if isinstance(error, cls)), 400)
    log.info("%s %s refused (%d): %s", request.method, request.path, status, error.summary)
    if _wants_json():
        body = error_body(error.summary, error.details)
        if error.report is not None:
            body["report"] = error.report.as_dict(gettext)
        return body, status
    return render_template("error.html", summary=tr(error.summary),
                           details=[tr(d) for d in error.details]), status


def _http_error(error: HTTPException):
    limit = current_app.config["MAX_CONTENT_LENGTH"] or 0
    size = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit} bytes"
    summary = {413: gettext("The upload is larger than the service accepts (%(size)s; GRIDMAP_MAX_UPLOAD_MB "
                            "sets it).", size=size),
               401: gettext("Sign in first: this needs an account (a session, or a bearer token in the "
                            "Authorization header)."),
               403: gettext("Your account's role does not allow this; ask an administrator."),
               404: gettext("There is no such page or resource."),
               405: gettext("This method is not allowed here.")}.get(error.code or 0, error.description or "")
    if isinstance(error, CSRFError):
        summary = gettext("The form has expired or did not come from gridmap (its CSRF token is missing or "
                          "wrong); reload the page and try again.")
    headers = {"WWW-Authenticate": 'Bearer realm="gridmap"'} if error.code == 401 else {}
    if _wants_json():
        return {"error": summary, "details": []}, error.code, headers
    return render_template("error.html", summary=summary, details=[]), error.code, headers


