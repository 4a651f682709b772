"""A writer process for the PostgreSQL concurrency and crash tests.

Run as ``python -m tests.pg_writer URL TAG COUNT ORIGIN...``: it appends COUNT
events with IDs ``TAG-0``, ``TAG-1``, ... spread round-robin over the logs
ORIGIN..., from several threads (so its appends share commits), and prints
``ORIGIN EVENT_ID`` on its own line, flushed, as soon as each append is
acknowledged. Whatever it printed before it was killed must be in the logs.
An append that fails with a StorageError (the server went away) is retried
with the same event ID until it goes in or is refused as a duplicate (it went
in before), as the docs tell writers to do.
"""

from __future__ import annotations

import sys
import threading
import time

from disclosure_ledger._log.database import LedgerDatabase
from disclosure_ledger.errors import DuplicateEventError, StorageError

from .ledger_helpers import event, writer_key
from .pg_keys import log_key_for


def main() -> None:
    url, tag, count, origins = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    out_lock = threading.Lock()
    db = LedgerDatabase.connect(url, pool_size=4)
    writer = writer_key()
    ledgers = [db.open(o, log_key=log_key_for(o), writers=[writer]) for o in origins]

    def work(k: int, threads: int) -> None:
        for i in range(k, count, threads):
            ledger = ledgers[i % len(ledgers)]
            ev = event(i, event_id=f"{tag}-{i}")
            for _attempt in range(200):
                try:
                    ledger.append(ev)
                except DuplicateEventError:
                    break  # a retry of an append that went in before
                except StorageError:
                    time.sleep(0.05)
                    continue
                break
            else:
                raise SystemExit(f"{tag}-{i}: could not append")
            with out_lock:
                sys.stdout.write(f"{ledger.origin} {tag}-{i}\n")
                sys.stdout.flush()

    threads = [threading.Thread(target=work, args=(k, 4)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.close()


if __name__ == "__main__":
    main()
