"""`ins-engine user add|remove|list`: the console's users, in the file `[http] users` names.

The password is asked twice on a terminal, or read as one line from standard input (for
scripts: `printf '%s\\n' "$PASSWORD" | ins-engine user add ...`); only its hash is written.
A running engine sees the change at the next login.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from engine.commands.common import add_config_argument, read_config
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
