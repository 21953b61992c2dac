"""Signing in and what each request may do.

Every request passes :func:`guard` first: it finds who is asking — a bearer token
(``Authorization: Bearer …``, or Open311's ``api_key``) or a signed-in session (Flask-Login) —
and whether their role allows the endpoint (:data:`WRITES`, :data:`PAGES`; every other GET
needs ``read``, open to visitors only when ``GRIDMAP_PUBLIC_READ`` says so).  A write without
credentials is 401, with a role that does not allow it 403.  A write by a session must carry its
CSRF token (Flask-WTF: the ``csrf_token`` field of a form, the ``X-CSRFToken`` header of a
script); a bearer token is not sent by browsers on their own, so it needs none.  Every write by
someone known goes into the audit trail with its outcome.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, abort, current_app, g, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response

from ..accounts import Account, Permission, Role
from . import service

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
logins = LoginManager()

#: What each writing endpoint needs; a writing endpoint not listed is for admins only.
WRITES: dict[str, Permission] = {
    **dict.fromkeys(("api.upload_layer", "api.commit_version", "api.restore_version", "api.clean_version",
                     "editor.save", "editor.split", "editor.merge", "pages.upload", "pages.commit_page",
                     "pages.restore_page", "pages.clean_page"), Permission.EDIT_BOUNDARIES),
    **dict.fromkeys(("api.post_incidents", "report.submit", "open311.post_request"), Permission.REPORT),
    "api.take_step": Permission.UPDATE_INCIDENT,
    **dict.fromkeys(("api.add_staff", "api.change_staff"), Permission.MANAGE_STAFF),
    **dict.fromkeys(("accounts.add_account", "accounts.change_account", "accounts.add_token"),
                    Permission.MANAGE_ACCOUNTS),
    "open311.missing": Permission.READ,          # answers 404 or 405 and writes nothing
}
#: Pages and reads that need more than ``read``.
PAGES: dict[str, Permission] = {
    "pages.upload": Permission.EDIT_BOUNDARIES, "editor.edit_page": Permission.EDIT_BOUNDARIES,
    "report.form": Permission.REPORT, "report.done": Permission.REPORT,
    **dict.fromkeys(("accounts.list_accounts", "accounts.audit", "accounts.accounts_page"),
                    Permission.MANAGE_ACCOUNTS),
}
#: Open to everyone: signing in and out, the assets, the health check.
OPEN = frozenset({"auth.login", "auth.logout", "static", "health"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SignedIn(UserMixin):
    """A session's account, as Flask-Login keeps it: its id with a piece of the password hash,
    so changing the password (or the account going inactive) ends the old sessions."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def get_id(self) -> str:
        return f"{self.account.id}:{self.account.password_hash[-12:]}"


def init(app: Flask) -> None:
    settings = app.config["GRIDMAP_SETTINGS"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = settings.session_key()
    app.config.update(WTF_CSRF_CHECK_DEFAULT=False,      # checked by guard, for sessions only
                      WTF_CSRF_TIME_LIMIT=None,          # a report form left open for hours still sends
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax")
    csrf.init_app(app)
    logins.init_app(app)
    logins.user_loader(_session_account)
    app.before_request(guard)
    app.after_request(_audit)
    app.context_processor(_template_names)
    app.register_blueprint(bp)


def _template_names() -> dict[str, Any]:
    account = g.get("account")
    public = current_app.config["GRIDMAP_SETTINGS"].public_read

    def can(permission: str) -> bool:
        if account is None:
            return public and permission == Permission.READ.value
        return account.can(Permission(permission))
    return {"account": account, "by_token": g.get("by_token", False), "role_label": role_label, "can": can}


def role_label(role: Role) -> str:
    return {Role.VIEWER: gettext("viewer"), Role.WORKER: gettext("grid worker"), Role.PLANNER: gettext("planner"),
            Role.ADMIN: gettext("administrator")}[role]


def _session_account(key: str) -> SignedIn | None:
    account_id, _, fingerprint = key.partition(":")
    if not account_id.isascii() or not account_id.isdigit() or len(account_id) > 18:
        return None
    account = service().access.by_id(int(account_id))
    if account is None or not account.active or account.password_hash[-12:] != fingerprint:
        return None
    return SignedIn(account)


def guard() -> Response | None:
    """Who is asking, and may they?  Sets ``g.account`` (None: a visitor) and ``g.by_token``."""
    endpoint = request.endpoint or ""
    if endpoint == "static":
        return None                  # scripts, styles and fonts: the same for everyone, no lookup
    g.account, g.by_token = _requester()
    if endpoint in OPEN or request.method == "OPTIONS":
        if request.method in UNSAFE:
            csrf.protect()
        return None
    needed = _needed(endpoint)
    if g.account is None:
        if needed is Permission.READ and current_app.config["GRIDMAP_SETTINGS"].public_read:
            return None
        return _unauthenticated()
    if request.method in UNSAFE and not g.by_token:
        csrf.protect()
    if not g.account.can(needed):
        abort(403)
    return None


def _needed(endpoint: str) -> Permission:
    if request.method not in UNSAFE:
        return PAGES.get(endpoint, Permission.READ)
    if endpoint == "api.post_incidents" and request.mimetype == "multipart/form-data":
        return Permission.IMPORT_INCIDENTS         # a file of incidents, not a report
    return WRITES.get(endpoint, Permission.MANAGE_ACCOUNTS)


def _requester() -> tuple[Account | None, bool]:
    header = request.headers.get("Authorization", "")
    key = request.values.get("api_key") if request.blueprint == "open311" else None
    if header or key:
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() != "bearer":
            abort(401)
        account = service().access.for_token((token or key or "").strip())
        if account is None:
            abort(401)
        return account, True
    if current_user.is_authenticated:
        return current_user.account, False
    return None, False


def _unauthenticated() -> Response:
    if request.path.startswith(("/api/", "/open311/")) or request.method in UNSAFE:
        abort(401)
    return redirect(url_for("auth.login", next=request.full_path if request.args else request.path))


def _audit(response: Response) -> Response:
    account = g.get("account")
    if request.method in UNSAFE and account is not None and request.endpoint not in ("auth.login", "auth.logout"):
        target = request.path[:300]
        try:
            service().access.record(account.name, request.endpoint or "", target, response.status_code)
        except Exception:  # noqa: BLE001 - the change is made; a failed audit line is logged, not lost silently
            log.exception("could not record %s %s by %s in the audit trail", request.method, target, account.name)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """The sign-in page; a good name and password start a session and go on to ``next``."""
    failed = False
    if request.method == "POST":
        name = (request.form.get("name") or "").strip()
        account = service().access.sign_in(name, request.form.get("password") or "")
        if account is not None:
            login_user(SignedIn(account))
            log.info("%s signed in", account.name)
            return redirect(_local(request.args.get("next")) or url_for("pages.index"))
        failed = True
        log.info("a sign-in failed")
    return render_template("login.html", failed=failed)


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    return redirect(url_for("auth.login"))


def _local(target: str | None) -> str | None:
    """``next`` only when it is a path on this site (never another host: no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    return target
