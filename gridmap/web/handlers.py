"""The one error handler: domain errors become 4xx, as JSON for the API and a page for people."""
from __future__ import annotations

import logging

from flask import Flask, current_app, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from ..errors import Conflict, GridmapError, InvalidInput, NotFound, PreconditionFailed
from . import error_body, tr

log = logging.getLogger(__name__)

STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409, PreconditionFailed: 412}


def register(app: Flask) -> None:
    app.register_error_handler(GridmapError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)


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
               404: gettext("There is no such page or resource."),
               405: gettext("This method is not allowed here.")}.get(error.code or 0, error.description or "")
    if _wants_json():
        return {"error": summary, "details": []}, error.code
    return render_template("error.html", summary=summary, details=[]), error.code


