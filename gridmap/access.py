"""Who may use gridmap: accounts kept in the store, signing in, tokens and the audit trail
(the rules themselves are in :mod:`gridmap.accounts`)."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone
from functools import cache

from .accounts import Account, AuditEntry, Role, new_account, new_password, new_token, token_hash
from .errors import N_, InvalidInput, NotFound, message
from .storage import StaffMember, Store

log = logging.getLogger(__name__)

#: The demo's accounts, one per role, made on a first run with demo data.
DEMO_ACCOUNTS = (("admin", Role.ADMIN), ("planner", Role.PLANNER), ("worker", Role.WORKER),
                 ("viewer", Role.VIEWER))


@cache
def _unknown() -> Account:
    """Checked against when a name is unknown, so that a wrong name takes as long as a wrong password."""
    return new_account("unknown", Role.VIEWER, password=new_password())


class Access:
    """The accounts of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, name: str, role: Role, *, password: str | None = None, staff_id: int | None = None,
               token_label: str | None = None) -> tuple[Account, str | None]:
        """A new account, and its first bearer token when ``token_label`` is given (shown once)."""
        account = new_account(name, role, password=password, staff_id=staff_id)
        self._check_staff(account)
        token, hashed = new_token() if token_label is not None else (None, None)
        with self.store.writing() as tx:
            account = replace(account, id=tx.add_account(account))
            if hashed is not None:
                tx.add_token(account.id or 0, hashed, token_label or "")
        log.info("account %s (%s) created", account.name, account.role.value)
        return account, token

    def change(self, account_id: int, *, role: Role | None = None, active: bool | None = None,
               password: str | None = None, staff_id: int | None = None) -> Account:
        """Change an account's role, whether it may sign in, its password or its staff entry."""
        was = self.by_id(account_id)
        if was is None:
            raise NotFound(message(N_("there is no account {id}"), id=account_id))
        fresh = new_account(was.name, role or was.role, password=password,
                            staff_id=was.staff_id if staff_id is None else staff_id)
        account = replace(was, role=fresh.role, staff_id=fresh.staff_id,
                          active=was.active if active is None else active,
                          password_hash=fresh.password_hash if password is not None else was.password_hash)
        self._check_staff(account)
        with self.store.writing() as tx:
            tx.update_account(account)
        return account

    def issue_token(self, account_id: int, label: str = "") -> str:
        """A further bearer token for an account (shown once)."""
        if self.by_id(account_id) is None:
            raise NotFound(message(N_("there is no account {id}"), id=account_id))
        token, hashed = new_token()
        with self.store.writing() as tx:
            tx.add_token(account_id, hashed, label)
        return token

    def sign_in(self, name: str, password: str) -> Account | None:
        """The account, when the name and password match an active one."""
        account = self.store.account(name=name)
        if account is None:
            _unknown().password_matches(password)    # as long as for a known name: names cannot be told by timing
            return None
        return account if account.active and account.password_matches(password) else None

    def for_token(self, token: str) -> Account | None:
        """The active account a bearer token belongs to, or None."""
        account = self.store.account(token_hash=token_hash(token))
        return account if account is not None and account.active else None

    def by_id(self, account_id: int) -> Account | None:
        return self.store.account(account_id=account_id)

    def all(self) -> list[Account]:
        return self.store.accounts()

    def staff_unit(self, account: Account) -> tuple[str, str] | None:
        """The level and unit code of the account's staff registry entry, while that entry is active."""
        member = self._staff().get(account.staff_id) if account.staff_id is not None else None
        return (member.level, member.unit_code) if member is not None and member.active else None

    def record(self, actor: str, action: str, target: str, status: int) -> None:
        """Add a change to the audit trail."""
        with self.store.writing() as tx:
            tx.add_audit(AuditEntry(at=datetime.now(timezone.utc).replace(tzinfo=None), actor=actor,
                                    action=action, target=target, status=status))

    def audit(self, *, limit: int = 200, before: int | None = None) -> list[AuditEntry]:
        return self.store.audit_entries(limit=limit, before=before)

    def demo_accounts(self) -> list[tuple[str, Role, str]]:
        """On a store without accounts, one account per role with a fresh password (name, role,
        password, to be shown once); none when accounts exist."""
        made: list[tuple[str, Role, str]] = []
        with self.store.writing() as tx:       # the write lock: two server processes make them once
            if tx.has_accounts():
                return []
            for name, role in DEMO_ACCOUNTS:
                password = new_password()
                tx.add_account(new_account(name, role, password=password))
                made.append((name, role, password))
        return made

    def _staff(self) -> dict[int | None, StaffMember]:
        return {member.id: member for member in self.store.staff_members()}

    def _check_staff(self, account: Account) -> None:
        if account.staff_id is not None and account.staff_id not in self._staff():
            raise InvalidInput(message(N_("there is no staff member {id}"), id=account.staff_id))
