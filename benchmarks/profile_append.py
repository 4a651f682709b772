"""Where a record's CPU goes on the append path, step by step, beside the signature's.

Run:  python benchmarks/profile_append.py [--n 5000]

Each step of appending is timed on its own over ``n`` records with the
thread's CPU clock (the best of five rounds, since the machine is shared), in
the order the ledger runs them: reading and validating the event (three ways
in), sequencing, signing, hashing into the tree, storing, acknowledging. The
raw limit beside them is one libsodium Ed25519 signature of a record's size,
measured in the same run. The last lines give the committer thread's and the
whole process's CPU per record for ``append_many`` itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench_ledger import LOG, WRITER, event_json
from disclosure_ledger._core import records
from disclosure_ledger._core.merkle import CompactRange
from disclosure_ledger._log import committer as committer_module
from disclosure_ledger._log.committer import AppendReceipt
from disclosure_ledger._log.ledger import Ledger


def per_record(step: Callable[[], object], n: int, rounds: int = 5) -> float:
    """CPU µs per record of ``step`` (which handles ``n`` records), best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        step()
        best = min(best, time.thread_time() - t0)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=5000)
    n = ap.parse_args().n
    dicts = [event_json(i) for i in range(n)]
    lines = [json.dumps(d).encode() for d in dicts]
    events = [records.event_from_json(d) for d in dicts]
    datas = [records.encode_event(e) for e in events]
    prefix = records.signing_message(LOG.name, b"")
    pack, chain = records.HEADER.pack, records.CHAIN_PREFIX

    def sequence() -> list[bytes]:
        prev, out = records.GENESIS_PREV, []
        for i, d in enumerate(datas):
            content = pack(records.ENVELOPE_VERSION, i, prev, 1, WRITER.key_id, len(d)) + d
            prev = hashlib.sha256(chain + content).digest()
            out.append(content)
        return out

    contents = sequence()
    sigs = [WRITER.sign_raw(prefix + c) for c in contents]

    def tree() -> None:
        t = CompactRange()
        for c, s in zip(contents, sigs, strict=True):
            t.append_nodes(hashlib.sha256(b"\x00" + c + s).digest())

    rows: list[tuple[str, float]] = [
        (
            "raw json.loads of the line (for scale)",
            per_record(lambda: [json.loads(x) for x in lines], n),
        ),
        (
            "read a JSONL line: records.parse_json_line",
            per_record(lambda: [records.parse_json_line(x) for x in lines], n),
        ),
        (
            "or a dict: records.event_and_encoding",
            per_record(lambda: [records.event_and_encoding(d) for d in dicts], n),
        ),
        (
            "or an Event: records.encode_event",
            per_record(lambda: [records.encode_event(e) for e in events], n),
        ),
        ("sequence: header, chain hash", per_record(sequence, n)),
        (
            "sign: prefix + libsodium Ed25519",
            per_record(lambda: [WRITER.sign_raw(prefix + c) for c in contents], n),
        ),
        ("leaf hash and Merkle frontier", per_record(tree, n)),
        (
            "acknowledge: one AppendReceipt",
            per_record(lambda: [AppendReceipt(i, b"", "", None) for i in range(n)], n),
        ),  # type: ignore[arg-type]
    ]
    with tempfile.TemporaryDirectory() as d:
        with Ledger.create(Path(d) / "p.ledger", log_key=LOG, writers=[WRITER]) as led:
            leaves = [c + s for c, s in zip(contents, sigs, strict=True)]
            ids = [e.event_id for e in events]
            t0 = time.thread_time()
            with led._store.append_txn() as txn:
                txn.insert_records(0, leaves, ids)
            rows.append(
                ("store: records and event IDs (SQLite)", (time.thread_time() - t0) / n * 1e6)
            )
        # The whole of append_many: the committer thread's CPU, and the process's.
        cpu = [0.0]
        original = committer_module.Committer._commit

        def timed(self: committer_module.Committer, batch: list[object]) -> None:
            t0 = time.thread_time()
            try:
                original(self, batch)  # type: ignore[arg-type]
            finally:
                cpu[0] += time.thread_time() - t0

        committer_module.Committer._commit = timed  # type: ignore[method-assign]
        try:
            with Ledger.create(Path(d) / "q.ledger", log_key=LOG, writers=[WRITER]) as led:
                led.append_many(events[:1000])
                cpu[0] = 0.0
                p0 = time.process_time()
                for i in range(1000, n, 1000):
                    led.append_many(events[i : i + 1000])
                process = (time.process_time() - p0) / (n - 1000) * 1e6
        finally:
            committer_module.Committer._commit = original  # type: ignore[method-assign]
        rows.append(("append_many: the committer thread, per record", cpu[0] / (n - 1000) * 1e6))
        rows.append(("append_many: the whole process (all threads), per record", process))
    sign = rows[5][1]
    width = max(len(r[0]) for r in rows)
    print(f"CPU µs per record, best of 5 rounds of {n:,} (threads: {threading.active_count()})")
    for label, us in rows:
        print(f"{label:<{width}}  {us:7.2f}  {us / sign:5.2f}x sign")
    print(f"outside the signature, append_many: {rows[-1][1] - sign:.1f} µs a record")


if __name__ == "__main__":
    main()
