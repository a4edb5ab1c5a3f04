"""`ins-engine user add|remove|list|unlock`: the console's users, in the file `[http] users`
names, and their login lockouts, in the store.

The password is asked twice on a terminal, or read as one line from standard input (for
scripts: `printf '%s\\n' "$PASSWORD" | ins-engine user add ...`); only its hash is written.
A running engine sees the change at the next login. `unlock` forgets a name's wrong
passwords in the store the running engines count them in, so it lifts a lockout at once,
and says so in the audit.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from engine.commands.common import add_config_argument, on_store, read_config
from engine.console.brake import user_key
from engine.console.users import (
    MIN_PASSWORD_LENGTH,
    ROLE_NAMES,
    Role,
    User,
    hash_password,
    load_users,
    save_users,
    valid_name,
)
from engine.errors import CliError
from engine.store.backends import OpenStore
from engine.store.base import AuditEntry

UNLOCKED_BY = "command line"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("user", help="console users: add, remove, list")
    actions = parser.add_subparsers(dest="user_command", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add a user (or, with --force, change one)")
    add_config_argument(add)
    add.add_argument("name", help="login name (letters, digits, . _ @ -)")
    add.add_argument("--role", required=True, choices=ROLE_NAMES, help="what the user may do")
    add.add_argument("--force", action="store_true", help="replace an existing user")
    add.set_defaults(handler=add_user)

    remove = actions.add_parser("remove", help="remove a user")
    add_config_argument(remove)
    remove.add_argument("name")
    remove.set_defaults(handler=remove_user)

    listing = actions.add_parser("list", help="names and roles")
    add_config_argument(listing)
    listing.set_defaults(handler=list_users)

    unlock = actions.add_parser(
        "unlock", help="lift a login lockout now (every client), running engines included"
    )
    add_config_argument(unlock)
    unlock.add_argument("name", help="login name, as typed on the login page (any case)")
    unlock.set_defaults(handler=unlock_user)


def users_path(args: argparse.Namespace) -> Path:
    config = read_config(args)
    if config.http is None or config.http.users is None:
        raise CliError(f'{config.source}: set [http] users = "users.toml" to keep console users')
    return Path(config.http.users)


def add_user(args: argparse.Namespace) -> int:
    if not valid_name(args.name):
        raise CliError(f"user name {args.name!r}: letters, digits, . _ @ - (64 at most)")
    path = users_path(args)
    users = load_users(path)
    if args.name in users and not args.force:
        raise CliError(f"user {args.name} exists in {path} (--force replaces it)")
    password = read_password()
    users[args.name] = User(args.name, Role[args.role.upper()], hash_password(password))
    save_users(path, users)
    print(f"user {args.name} ({args.role}) written to {path}")
    return 0


def remove_user(args: argparse.Namespace) -> int:
    path = users_path(args)
    users = load_users(path)
    if users.pop(args.name, None) is None:
        raise CliError(f"no user {args.name} in {path}")
    save_users(path, users)
    print(f"user {args.name} removed from {path}")
    return 0


def list_users(args: argparse.Namespace) -> int:
    for user in sorted(load_users(users_path(args)).values(), key=lambda user: user.name):
        print(f"{user.name}\t{user.role.label}")
    return 0


def unlock_user(args: argparse.Namespace) -> int:
    """Forget the name's wrong passwords; a name of no local user may be locked too (single
    sign-on names, or someone guessing), so any valid name is accepted."""
    if not valid_name(args.name):
        raise CliError(f"user name {args.name!r}: letters, digits, . _ @ - (64 at most)")

    async def forget(store: OpenStore) -> int:
        cleared = await store.clear_login_failures(user_key(args.name))
        entry = AuditEntry(time.time(), UNLOCKED_BY, "login_unlocked", args.name, "")
        await store.record_audit(entry)
        return cleared

    cleared = on_store(read_config(args), forget)
    print(f"user {args.name}: {cleared} recent failed login(s) forgotten; they may log in now")
    return 0


def read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise CliError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password
