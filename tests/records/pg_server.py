"""A throwaway PostgreSQL server on 127.0.0.1 for the store tests (initdb + pg_ctl in a temp dir).

As root (CI), the server runs as the `postgres` system user, which the server packages create.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def pg_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgUnavailable(Exception):
    pass


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a URL of the `postgres` database of a fresh server; stops and removes it after."""
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise PgUnavailable("PostgreSQL server binaries are not installed (`make system-deps` installs them)")
    base = Path(tempfile.mkdtemp(prefix="callgate-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: hand the directory to the postgres user.
        try:
            user = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PgUnavailable("running as root and there is no `postgres` user to run the server") from exc
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()
    started = False
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "callgate", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(base / "log")
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-l", log, "-o", options, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=90,
        )
        started = True
        yield f"postgresql://callgate@127.0.0.1:{port}/postgres"
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "60", "stop"],
                capture_output=True,
                timeout=90,
            )
        shutil.rmtree(base, ignore_errors=True)
