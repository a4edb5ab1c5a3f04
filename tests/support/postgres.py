"""A throwaway PostgreSQL server for tests and benchmarks: Debian's `postgresql` binaries,
`initdb` in a temporary folder, a unix socket in that folder and a loopback TCP port.

    server = PostgresServer.start()          # about a second; raises Unavailable without PG
    url = server.create_schema("t1")         # a fresh, empty store of its own, at once
    server.stop()                            # stops it and removes its folder

A test's store is a schema of its own in the database `tests` (`search_path` set in the URL's
`options`, as a DBA may do for an engine): creating a schema takes a millisecond where
creating a database copies a template.

PostgreSQL refuses to run as root, and CI runs as root: the folder is then given to the
unprivileged `postgres` account and every server command runs as that account
(`runuser`). The unix socket (in the folder) trusts the local superuser, for set-up; TCP
connections on 127.0.0.1 need a password (SCRAM), as an engine's would. `durable=False`
turns fsync off, for tests, where a crash of the database is not what is tested; the
benchmarks keep the server's defaults.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

from tests.support.ports import free_port

USER = "ins_engine"
PASSWORD = "test-only-password"
SERVICE_ACCOUNT = "postgres"
DATABASE = "tests"


class Unavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed here."""


def binaries() -> Path:
    """The folder of `initdb` and `pg_ctl`: Debian keeps them out of PATH, per version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise Unavailable("PostgreSQL server binaries not found: apt-get install postgresql")


def _version(path: str) -> int:
    number = Path(path).parts[-3]
    return int(number) if number.isdigit() else 0


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    account: str | None  # the account running the server, when we are root

    @classmethod
    def start(cls, durable: bool = False) -> PostgresServer:
        bin_folder = binaries()
        folder = Path(tempfile.mkdtemp(prefix="ins-engine-pg-"))
        account = SERVICE_ACCOUNT if os.geteuid() == 0 else None
        if account is not None:
            entry = pwd.getpwnam(account)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
        server = cls(folder, free_port(), bin_folder, account)
        try:
            server._init(durable)
            server._run("pg_ctl", "-D", str(server.data), "-l", str(server.log), "-w", "start")
            server.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}' CREATEDB")
            server.sql(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        except BaseException:
            server.stop()
            raise
        return server

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def socket_folder(self) -> Path:
        return self.folder

    def url(self, database: str, user: str = USER) -> str:
        """A TCP URL without password (the password comes from PGPASSWORD)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_schema(self, name: str) -> str:
        """A new empty schema owned by the test role; returns the URL of a store in it."""
        with psycopg.connect(
            host=str(self.socket_folder), port=self.port, user="postgres", dbname=DATABASE,
            autocommit=True,
        ) as admin:  # fmt: skip
            admin.execute(f'CREATE SCHEMA "{name}" AUTHORIZATION {USER}')  # type: ignore[arg-type]
        return f"{self.url(DATABASE)}?options=-csearch_path%3D{name}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run a statement as the superuser over the unix socket; returns psql's output."""
        return self._run(
            "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", str(self.folder),
            "-p", str(self.port), "-d", database, "-c", statement,
        )  # fmt: skip

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def _init(self, durable: bool) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.folder}'",
            "max_connections = 200",
            "shared_buffers = 32MB",
            "log_min_messages = warning",
        ]
        if not durable:
            settings += ["fsync = off", "full_page_writes = off"]
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n".join(settings) + "\n")

    def _run(self, program: str, *args: str) -> str:
        command = [str(self.bin / program), *args]
        if program == "psql":
            command[0] = shutil.which("psql") or command[0]
        if self.account is not None:
            command = ["runuser", "-u", self.account, "--", *command]
        done = subprocess.run(
            command,
            cwd=self.folder,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PGPASSWORD": ""},
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, command, done.stdout, done.stderr)
        return done.stdout
