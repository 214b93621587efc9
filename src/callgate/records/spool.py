"""Where a finished call's record waits while the store is unusable (locked by another process,
read-only, corrupt, or a PostgreSQL server that does not answer): one JSON file per call in a
spool directory, written atomically (temporary file, fsync, rename, fsync of the directory).

The next process that opens the store (`serve`, `chat`, any `callgate calls` command) and serve's
background worker import the spooled records (with their post-call jobs) into the store and
remove the files. A record already in the store is never overwritten by its spooled copy.

The directory is `CALLGATE_SPOOL_DIR`, else `<store file>.spool` next to a SQLite store, else
`$XDG_DATA_HOME/callgate/spool/<digest of the store URL>`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from callgate.records.leases import HOST, holder_gone
from callgate.records.model import CallRecord
from callgate.records.store import NewReport, Store, StoreError, default_store_url, sqlite_path
from callgate.redact import redact

ENV_SPOOL = "CALLGATE_SPOOL_DIR"
FORMAT = 1

log = logging.getLogger(__name__)


def spool_dir(store_url: str | None, env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    if environ.get(ENV_SPOOL):
        return Path(environ[ENV_SPOOL]).expanduser()
    url = store_url or default_store_url(dict(environ))
    path = sqlite_path(url)
    if path is not None and path != ":memory:":
        file = Path(path).expanduser()
        return file.with_name(file.name + ".spool")
    # One directory per store (its URL without the password): a record is imported into the store
    # it was meant for, never into another one the same user has.
    data_home = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "callgate" / "spool" / hashlib.sha256(redact(url).encode()).hexdigest()[:16]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(
        self,
        record: CallRecord,
        *,
        now: float,
        job: dict[str, Any] | None = None,
        report: NewReport | None = None,
    ) -> Path:
        """Keep the record (and what the store would have queued with it) durably; raises
        OSError when even the spool cannot be written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = {
            "format": FORMAT,
            "now": now,
            "record": record.model_dump(mode="json"),
            "job": job,
            "report": asdict(report) if report is not None else None,
        }
        name = f"{int(now * 1_000_000):020d}-{_UNSAFE.sub('_', record.call_id)[:80]}.json"
        final = self.directory / name
        temporary = self.directory / f".{name}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(entry, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, final)
        _sync_directory(self.directory)
        return final

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.json"))

    def replay(self, store: Store) -> int:
        """Import spooled records into `store`; returns how many. Stops (keeping the rest) at the
        first store error. Several processes may replay at once: each file is taken by a rename."""
        self._adopt_orphans()
        imported = 0
        for path in self.pending():
            claimed = path.with_name(f"{path.name}~{HOST}~{os.getpid()}.claimed")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:
                continue  # another process took it
            try:
                entry = json.loads(claimed.read_text(encoding="utf-8"))
                record = CallRecord.model_validate(entry["record"])
                report = NewReport(**entry["report"]) if entry.get("report") else None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("spooled record %s is unreadable (%s): kept as %s.bad", path.name, exc, path.name)
                os.replace(claimed, path.with_name(path.name + ".bad"))
                continue
            try:
                store.save_call(
                    record, report, now=float(entry.get("now") or 0.0), job=entry.get("job"), replace=False
                )
            except StoreError:
                os.replace(claimed, path)
                raise
            claimed.unlink(missing_ok=True)
            imported += 1
        if imported:
            log.info("imported %d spooled call record(s) from %s", imported, self.directory)
        return imported

    def _adopt_orphans(self) -> None:
        """Files taken by a replaying process of this host that died are put back in line."""
        if not self.directory.is_dir():
            return
        for path in self.directory.glob("*.json~*.claimed"):
            parts = path.name.removesuffix(".claimed").split("~")
            if len(parts) == 3 and holder_gone(f"{parts[1]}:{parts[2]}:spool"):
                os.replace(path, path.with_name(parts[0]))


def _sync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
