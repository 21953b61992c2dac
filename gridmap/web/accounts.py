"""Accounts for administrators: the API (``/api/accounts``, ``/api/audit``) and the accounts page."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from ..accounts import Account, AuditEntry, Role
from ..errors import N_, InvalidInput, message
from ..options import opt, parse_count, parse_version
from . import json_object, service

bp = Blueprint("accounts", __name__)

#: The most audit entries one request returns.
AUDIT_PAGE = 500


@bp.get("/api/accounts")
def list_accounts() -> dict[str, Any]:
    return {"accounts": [account_record(a) for a in service().access.all()]}


@bp.post("/api/accounts")
def add_account() -> tuple[dict[str, Any], int]:
    """A new account: JSON ``name``, ``role``, and ``password`` and/or ``"token": true`` (the token is
    in the answer, once); ``staff_id`` links a worker to their staff registry entry."""
    body = json_object()
    account, token = service().access.create(
        str(body.get("name") or "").strip(), Role.parse(str(body.get("role") or "")),
        password=_password(body), staff_id=_staff_id(body),
        token_label=str(body.get("token_label") or "api") if _flag(body, "token") else None)
    return {"account": account_record(account), "token": token}, 201


@bp.patch("/api/accounts/<id:account_id>")
def change_account(account_id: int) -> dict[str, Any]:
    """Change ``role``, ``active``, ``password`` or ``staff_id``."""
    body = json_object()
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        raise InvalidInput(message(N_("active={value!r} is not valid; expected true or false"), value=active))
    role = Role.parse(str(body["role"])) if body.get("role") is not None else None
    return account_record(service().access.change(account_id, role=role, active=active, password=_password(body),
                                                  staff_id=_staff_id(body)))


@bp.post("/api/accounts/<id:account_id>/tokens")
def add_token(account_id: int) -> tuple[dict[str, Any], int]:
    """A further bearer token for a script or a kiosk screen (``label`` says which); shown once."""
    body = json_object() if request.is_json else {}
    return {"token": service().access.issue_token(account_id, str(body.get("label") or "")[:200])}, 201


@bp.get("/api/audit")
def audit() -> dict[str, Any]:
    """The latest changes, newest first: ``limit`` (at most 500), ``before`` an entry id for the next page."""
    limit = parse_count(opt(request.args, "limit"), "limit", default=100, maximum=AUDIT_PAGE)
    before = parse_version(opt(request.args, "before"), "before", minimum=1)
    return {"entries": [audit_record(e) for e in service().access.audit(limit=limit, before=before)]}


@bp.get("/accounts")
def accounts_page() -> str:
    return render_template("accounts.html", accounts=service().access.all(),
                           entries=service().access.audit(limit=100), roles=list(Role))


def account_record(account: Account) -> dict[str, Any]:
    return {"id": account.id, "name": account.name, "role": account.role.value, "active": account.active,
            "staff_id": account.staff_id, "has_password": bool(account.password_hash),
            "created_at": account.created_at.isoformat(timespec="seconds") + "Z" if account.created_at else None}


def audit_record(entry: AuditEntry) -> dict[str, Any]:
    return {"id": entry.id, "at": entry.at.isoformat(timespec="seconds") + "Z", "actor": entry.actor,
            "action": entry.action, "target": entry.target, "status": entry.status}


def _password(body: dict[str, Any]) -> str | None:
    value = body.get("password")
    if value is not None and not isinstance(value, str):
        raise InvalidInput(message(N_("password must be text")))
    return value


def _staff_id(body: dict[str, Any]) -> int | None:
    value = body.get("staff_id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**62:
        raise InvalidInput(message(N_("staff_id={value!r} is not valid; expected a staff member's id"), value=value))
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(message(N_("{key}={value!r} is not valid; expected true or false"), key=key, value=value))
    return value
