"""A throwaway PostgreSQL server for the tests, or the one ``DL_TEST_POSTGRES_URL`` names.

The server is started once per test run (a session fixture in conftest.py):
``initdb`` and ``pg_ctl`` from the machine's PostgreSQL binaries, in a
temporary directory, listening on a free port of 127.0.0.1 only, run as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as
root). ``fsync`` is off: the tests kill writers and stop the server with
``pg_ctl stop -m immediate``, which the operating system's page cache
survives, and the suite stays fast. Each test that needs a database of its own
gets one from :meth:`PgServer.new_database`.

When neither a server of our own nor ``DL_TEST_POSTGRES_URL`` is possible the
PostgreSQL tests are skipped with one loud line; with ``CI=true`` that is a
failure instead (see conftest.py).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_counter = itertools.count()


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, if PostgreSQL is installed.

    ``DL_TEST_POSTGRES_BINDIR`` names it when set (a machine with several
    versions), and then nothing else is looked for.
    """
    given = os.environ.get("DL_TEST_POSTGRES_BINDIR")
    if given is not None:
        return Path(given) if (Path(given) / "initdb").is_file() else None
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A running server: its URL (database ``postgres``), and fresh databases on demand."""

    def __init__(self, url: str, *, bindir: Path | None = None, datadir: Path | None = None):
        self.url = url
        self.bindir = bindir
        self.datadir = datadir
        self._root: Path | None = None
        self._port = 0
        self._as_postgres = False
        self._fsync = False

    @property
    def own(self) -> bool:
        """Whether this run started the server (so it may stop and restart it)."""
        return self.datadir is not None

    # -- starting our own -------------------------------------------------------

    @classmethod
    def start_own(cls, bindir: Path, *, fsync: bool = False) -> PgServer:
        """initdb and start a server in a new temporary directory.

        ``fsync`` on is for benchmarks, which measure durable commits.

        Raises:
            RuntimeError: naming the step that failed, with its output.
        """
        root = Path(tempfile.mkdtemp(prefix="dl-pg-"))
        as_postgres = os.geteuid() == 0
        if as_postgres:
            shutil.chown(root, user="postgres", group="postgres")
        root.chmod(0o700)
        datadir = root / "data"
        port = _free_port()
        server = cls(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", bindir=bindir, datadir=datadir
        )
        server._root, server._port, server._as_postgres = root, port, as_postgres
        server._fsync = fsync
        server._run(
            "initdb",
            "-D",
            str(datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        server.start()
        return server

    def _cmd(self, tool: str, *args: str) -> list[str]:
        assert self.bindir is not None
        cmd = [str(self.bindir / tool), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else cmd

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr or proc.stdout}")

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        assert self._root is not None
        options = (
            f"-p {self._port} -c listen_addresses=127.0.0.1 -k {self._root}"
            + ("" if self._fsync else " -c fsync=off -c full_page_writes=off")
            + " -c max_connections=200"
            " -c shared_buffers=128MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-o", options, "-l", str(self._root / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``immediate`` is a crash: no checkpoint, recovery on start)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop the server and remove its directory."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)

    # -- databases --------------------------------------------------------------

    def url_for(self, database: str) -> str:
        """This server's URL, for ``database``."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))

    def new_database(self, prefix: str = "dl") -> str:
        """Create an empty database and return its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)
