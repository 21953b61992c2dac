"""Accounts, their roles and what each role may do; machine tokens; the audit trail.

People sign in with a name and a password (hashed with werkzeug's scrypt); scripts and kiosk
screens send a bearer token, stored only as its SHA-256.  A role is a set of permissions:

* viewer — browse maps, rankings and statistics;
* worker (网格员) — a viewer who reports incidents and takes lifecycle steps on the incidents of
  their own units (the staff registry entry the account is linked to);
* planner — a viewer who uploads, redraws, commits and restores boundaries, imports incident files
  and keeps the staff registry;
* admin — everything, and the accounts.

The rules live here; the web edge asks :meth:`Account.can` and :func:`covers_incident`.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Mapping

from werkzeug.security import check_password_hash, generate_password_hash

from .errors import N_, InvalidInput, Message, message


class Role(str, Enum):
    VIEWER = "viewer"
    WORKER = "worker"
    PLANNER = "planner"
    ADMIN = "admin"

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise InvalidInput(message(N_("role={value!r} is not valid; expected one of {choices}"), value=value,
                                       choices=", ".join(r.value for r in cls))) from None


class Permission(str, Enum):
    READ = "read"                            # maps, rankings, statistics, incidents
    REPORT = "report"                        # a new incident (form, API, Open311)
    UPDATE_INCIDENT = "update_incident"      # a lifecycle step (workers: their own units only)
    EDIT_BOUNDARIES = "edit_boundaries"      # upload, edit, save, commit, restore, clean
    IMPORT_INCIDENTS = "import_incidents"    # a file of incidents
    MANAGE_STAFF = "manage_staff"            # the staff registry
    MANAGE_ACCOUNTS = "manage_accounts"      # accounts, tokens, the audit log


GRANTS: Mapping[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.WORKER: frozenset({Permission.READ, Permission.REPORT, Permission.UPDATE_INCIDENT}),
    Role.PLANNER: frozenset({Permission.READ, Permission.EDIT_BOUNDARIES, Permission.IMPORT_INCIDENTS,
                             Permission.MANAGE_STAFF}),
    Role.ADMIN: frozenset(Permission),
}

#: A name people type to sign in: letters (any script), digits, ``._-@``; at most 100 characters.
_NAME = re.compile(r"^[\w.@-]{1,100}$")
#: The shortest password an account may have.
MIN_PASSWORD = 8
#: Tokens start with this, so a leaked one is recognisable in logs and secret scanners.
TOKEN_PREFIX = "gm_"


@dataclass(frozen=True)
class Account:
    """Someone who signs in (or a script holding one of its tokens)."""

    name: str
    role: Role
    password_hash: str = ""                # empty: signs in by token only
    staff_id: int | None = None            # the staff registry entry of a worker
    active: bool = True
    created_at: datetime | None = None
    id: int | None = None                  # given by the store

    def can(self, permission: Permission) -> bool:
        return self.active and permission in GRANTS[self.role]

    def password_matches(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)


@dataclass(frozen=True)
class AuditEntry:
    """One change someone made: when (UTC), who, what (``action``: the endpoint), to what (``target``:
    the level and version, the incident, the account…) and the response status."""

    at: datetime
    actor: str
    action: str
    target: str
    status: int
    id: int | None = None


def new_account(name: str, role: Role, *, password: str | None = None, staff_id: int | None = None) -> Account:
    """An account checked and with its password hashed; every problem is reported at once."""
    problems: list[Message] = []
    if not _NAME.match(name):
        problems.append(message(N_("name={value!r} is not valid; expected 1 to 100 letters, digits or . _ - @"),
                                value=name))
    if password is not None and len(password) < MIN_PASSWORD:
        problems.append(message(N_("the password is too short: expected at least {count} characters"),
                                count=MIN_PASSWORD))
    if problems:
        raise InvalidInput(message(N_("the account is not valid")), problems)
    return Account(name=name, role=role, staff_id=staff_id,
                   password_hash=generate_password_hash(password) if password else "")


def new_token() -> tuple[str, str]:
    """A fresh bearer token and the hash the store keeps (the token itself is shown once)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    """What a token is stored and looked up as: its SHA-256 (a token is random, so no salt is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    """A password for an account made without one (the demo's, the CLI's), shown once."""
    return secrets.token_urlsafe(12)


def covers_incident(account: Account, staff_unit: tuple[str, str] | None, units: Mapping[str, str | None]) -> bool:
    """Whether ``account`` may take steps on an incident with ``units`` (level → code): anyone with
    the permission, except a worker, who needs their own unit (``staff_unit``: the level and code of
    their staff registry entry) to hold the incident."""
    if not account.can(Permission.UPDATE_INCIDENT):
        return False
    if account.role is not Role.WORKER:
        return True
    return staff_unit is not None and units.get(staff_unit[0]) == staff_unit[1]
