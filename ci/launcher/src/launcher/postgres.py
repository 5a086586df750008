"""A throwaway PostgreSQL server (Debian's binaries) on 127.0.0.1, for the Debezium change data capture tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import StackError
from .net import HOST, claim_port
from .process import remove_at_exit, user_ids
from .service import Service
from .tools import postgres_bin

TEMP_PREFIX = "launcher-"  # the private data dirs of a server run as root (`down` removes them)


class Postgres(Service):
    """initdb in a fresh data dir, wal_level=logical, 127.0.0.1 only; superuser `postgres`, trust authentication.

    The unix socket lives next to the data dir. As root, the server runs as the `postgres` system user and its
    data dir is a private temporary directory that user can reach (a pytest tmp dir is root-only); the path is
    linked from <workdir>/<name>.
    """

    user = "postgres"  # the database superuser
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients such as Debezium to leave).
    stop_signal = signal.SIGINT

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None, name: str = "postgres",
                 settings: Mapping[str, Any] | None = None) -> None:
        super().__init__(workdir, name, "postgres.log")
        self.listener = claim_port(port, "PostgreSQL", "--pg-port")
        self.settings = dict(settings or {})
        self.bin = postgres_bin()
        if os.geteuid() == 0:
            self.run_as = "postgres"
            base = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-"))
            ids = user_ids(self.run_as)
            os.chown(base, ids["user"], ids["group"])
            remove_at_exit(base)
            self.workdir.mkdir(parents=True, exist_ok=True)
            link = self.dir  # where a person looks for it
            if link.is_symlink():
                link.unlink()
            if not link.exists():
                link.symlink_to(base)
            self.dir = base
            self.log = base / "postgres.log"
        self.data_dir = self.dir / "data"
        self.socket_dir = self.dir

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/postgres"

    def _run(self, cmd: Sequence[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "LC_ALL": "C", "PGTZ": "UTC"}
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, cwd=self.dir, env=env,
                              **(user_ids(self.run_as) if self.run_as else {}))

    def prepare(self) -> None:
        """initdb, once (a restart keeps the data)."""
        super().prepare()
        if (self.data_dir / "PG_VERSION").exists():
            return
        r = self._run([str(self.bin / "initdb"), "-D", str(self.data_dir), "-U", self.user, "--auth=trust",
                       "-E", "UTF8", "--locale=C", "--no-sync"], timeout=120)
        if r.returncode != 0:
            raise StackError(f"initdb failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")

    def command(self) -> list[str]:
        settings: dict[str, Any] = {
            "listen_addresses": HOST, "port": self.port, "unix_socket_directories": str(self.socket_dir),
            "wal_level": "logical", "max_wal_senders": 10, "max_replication_slots": 10,
            "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "32MB", "max_connections": 50, "logging_collector": "off",
            **self.settings,
        }
        cmd = [str(self.bin / "postgres"), "-D", str(self.data_dir)]
        for k, v in settings.items():
            cmd += ["-c", f"{k}={v}"]
        return cmd

    def env(self) -> Mapping[str, str]:
        return {**os.environ, "LC_ALL": "C"}

    def ready(self) -> bool:
        r = subprocess.run([str(self.bin / "pg_isready"), "-h", HOST, "-p", str(self.port), "-U", self.user,
                            "-t", "2"], capture_output=True, timeout=10)
        return r.returncode == 0

    def describe(self) -> str:
        return f"PostgreSQL on {HOST}:{self.port}"

    def waiting_for(self) -> str:
        return f"PostgreSQL to accept connections on {HOST}:{self.port}"

    def sql(self, statement: str, db: str = "postgres", timeout: float = 30.0) -> str:
        """Run SQL with psql over TCP; returns unaligned, tuples-only output ('|' separated). Raises on error."""
        r = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", HOST, "-p", str(self.port), "-U", self.user, "-d", db, "-c", statement],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
        if r.returncode != 0:
            raise StackError(f"psql failed (exit {r.returncode}): {r.stderr.strip()}")
        return r.stdout.strip()

    def debezium_config(self, topic_prefix: str, table_include_list: str | None = None,
                        db: str = "postgres", **overrides: Any) -> dict[str, Any]:
        """A Debezium PostgreSQL connector config for this server (pgoutput, no extra server plugin)."""
        cfg: dict[str, Any] = {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "tasks.max": "1",
            "database.hostname": HOST,
            "database.port": str(self.port),
            "database.user": self.user,
            "database.password": "postgres",
            "database.dbname": db,
            "topic.prefix": topic_prefix,
            "plugin.name": "pgoutput",
            "slot.name": re.sub(r"[^a-z0-9_]", "_", f"slot_{topic_prefix}".lower()),
            "publication.autocreate.mode": "filtered" if table_include_list else "all_tables",
        }
        if table_include_list:
            cfg["table.include.list"] = table_include_list
        cfg.update({k.replace("__", "."): v for k, v in overrides.items()})
        return cfg

    def state(self) -> dict[str, Any]:
        return {**super().state(), "port": self.port, "dsn": self.dsn, "socket_dir": str(self.socket_dir),
                "data_dir": str(self.data_dir)}
