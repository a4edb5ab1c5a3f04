"""Console users: scrypt hashes, the users file and `ins-engine user`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from engine.console.users import (
    Role,
    User,
    UsersFile,
    hash_password,
    load_users,
    save_users,
    verify_password,
)
from engine.errors import ConfigError
from tests.support.cli import Ran, run_cli


@pytest.mark.system
def test_a_hash_verifies_its_password_only() -> None:
    encoded = hash_password("correct horse battery")
    assert encoded.startswith("scrypt$15$8$1$")
    assert verify_password("correct horse battery", encoded)
    assert not verify_password("correct horse batterY", encoded)
    assert hash_password("correct horse battery") != encoded, "a new salt each time"


@pytest.mark.parametrize(
    "encoded", ["", "plain", "scrypt$15$8$1$not-base64!$x", "scrypt$40$8$1$AAAA$AAAA", "md5$x"]
)
def test_a_malformed_hash_never_verifies(encoded: str) -> None:
    assert verify_password("anything", encoded) is False


def test_the_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    users = {"ana": User("ana", Role.VIGILANCE, hash_password("long-enough-pass"))}
    save_users(path, users)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_users(path) == users
    assert repr(users["ana"]).count("scrypt") == 0, "no hash in a repr"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[users]]\nname = "a"\nrole = "admin"\npassword_hash = "scrypt$x"\n', "users[0].role"),
        ('[[users]]\nname = "a b"\nrole = "viewer"\npassword_hash = "scrypt$x"\n', "users[0].name"),
        ('[[users]]\nname = "a"\nrole = "viewer"\n', "users[0]"),
        (
            '[[users]]\nname = "a"\nrole = "viewer"\npassword_hash = "secret"\n',
            "users[0].password_hash",
        ),
        ("[other]\n", "-"),
    ],
)
def test_a_bad_users_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_users(path)
    assert caught.value.key == key


def test_the_engine_reads_the_file_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    users = UsersFile(path)
    assert users.get("ana") is None, "no file yet: nobody"
    save_users(path, {"ana": User("ana", Role.VIEWER, hash_password("long-enough-pass"))})
    found = users.get("ana")
    assert found is not None and found.role is Role.VIEWER
    save_users(path, {"ana": User("ana", Role.OPERATOR, hash_password("long-enough-pass"))})
    found = users.get("ana")
    assert found is not None and found.role is Role.OPERATOR


def run_user(config: Path, *args: str, password: str = "") -> Ran:
    return run_cli("user", *args, "--config", str(config), stdin=password + "\n")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    file = tmp_path / "engine.toml"
    file.write_text(
        '[http]\nlisten = "127.0.0.1:0"\nusers = "users.toml"\n\n'
        '[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n'
        '[[routes.destinations]]\nname = "archive"\nfile = "out"\n'
    )
    return file


@pytest.mark.system
def test_user_add_list_remove(config: Path) -> None:
    added = run_user(config, "add", "ana", "--role", "operator", password="a-long-password")
    assert added.status == 0, added.err
    assert "a-long-password" not in added.out + added.err
    users = load_users(config.parent / "users.toml")
    assert users["ana"].role is Role.OPERATOR
    assert verify_password("a-long-password", users["ana"].password_hash)
    again = run_user(config, "add", "ana", "--role", "viewer", password="a-long-password")
    assert (again.status, again.err.strip()) == (
        2,
        f"ins-engine user: user ana exists in {config.parent / 'users.toml'} (--force replaces it)",
    )
    listed = run_user(config, "list")
    assert listed.out == "ana\toperator\n"
    assert run_user(config, "remove", "ana").status == 0
    assert load_users(config.parent / "users.toml") == {}


def test_user_add_refuses_a_short_password_or_a_bad_name(config: Path) -> None:
    short = run_user(config, "add", "ana", "--role", "viewer", password="short")
    assert short.status == 2
    assert "at least 12 characters" in short.err
    bad = run_user(config, "add", "ana smith", "--role", "viewer", password="a-long-password")
    assert bad.status == 2
    assert "letters, digits" in bad.err
    assert not (config.parent / "users.toml").exists()


def test_user_needs_a_users_file_in_the_configuration(tmp_path: Path) -> None:
    file = tmp_path / "engine.toml"
    file.write_text('[[routes]]\nname = "adt"\nlisten = "127.0.0.1:0"\n')
    result = run_user(file, "list")
    assert result.status == 2
    assert "[http] users" in result.err


def test_check_reads_the_users_file(config: Path) -> None:
    (config.parent / "users.toml").write_text('[[users]]\nname = "ana"\nrole = "admin"\n')
    result = run_cli("check", "--config", str(config))
    assert result.status == 2
    assert result.err == (
        f"ins-engine check: {config}: http.users: {config.parent / 'users.toml'}: users[0]: "
        "name, role and password_hash\n"
    )
