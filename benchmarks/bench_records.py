"""Benchmark the records hot paths against the raw Ed25519 costs of this machine.

Every figure is microseconds of CPU per call, the median over many short
batches, because the machines this runs on are shared and noisy: the clock is
the thread's CPU time (``time.thread_time``), so time the thread spends
preempted by a neighbour is not counted, and the collector is paused. The raw
limits, taken in the same run, are Ed25519 signing and verification of a
message of a record's size: the ledger cannot append faster than it signs, and
a verifier cannot check faster than it verifies, so the records code should
cost well under either.

Usage::

    python benchmarks/bench_records.py [--quick] [--baseline OLD_RECORDS_PY]

``--baseline`` loads another copy of ``records.py`` (for example
``git show HEAD:src/disclosure_ledger/records.py > /tmp/old.py``) as a sibling
module and times it interleaved with the current one, batch by batch, so both
see the same load. The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disclosure_ledger._core import records
from disclosure_ledger._core.notes import Signer

_clock = time.thread_time
ORIGIN = "bench.example/ledger/owner-42"
WRITER = Signer("bench.example/writer", bytes(range(1, 33)))

# A typical event: one clip, an actor, a recipient and about eight fields.
EXAMPLE: dict[str, Any] = {
    "event_id": "4f0c1-2026-11-27-000123",
    "occurred_at": "2026-11-27T10:15:00.123456Z",
    "camera_id": "cam-7",
    "owner_id": "owner-42",
    "action": "release",
    "actor": {"kind": "vendor_employee", "id": "emp-19", "organization": "Vendor Inc"},
    "recipient": {"kind": "law_enforcement", "organization": "Springfield PD"},
    "legal_basis": "warrant",
    "legal_reference": "case 26-1193",
    "justification": "Imminent threat reported by caller.\nSupervisor approved.",
    "footage": [
        {
            "clip_id": "c-88",
            "sha256": hashlib.sha256(b"clip").hexdigest(),
            "start": "2026-11-27T09:00:00Z",
            "end": "2026-11-27T09:05:00Z",
        }
    ],
}

# The same event without the newline in its justification: printable ASCII
# without escapes, the case the readers check in one scan.
PLAIN = {**EXAMPLE, "justification": "Imminent threat reported by caller. Supervisor approved."}

# Targets in µs per call on an idle core (None: reported, no target).
TARGETS: dict[str, float | None] = {
    "raw json.loads": None,
    "event_from_json_text": 5.0,
    "  plain ASCII line": 5.0,
    "parse_json_line": 5.0,
    "event_from_json": 15.0,
    "Event(...)": None,
    "encode_event": 10.0,
    "decode_event": 15.0,
    "parse_envelope": 3.0,
    "verify_envelope": None,
    "raw Ed25519 verify": None,
    "raw Ed25519 sign": None,
}


def load_baseline(path: Path) -> ModuleType:
    """Load ``path`` as ``disclosure_ledger._bench_baseline`` (its relative imports resolve)."""
    name = "disclosure_ledger._bench_baseline"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def cases(rec: ModuleType) -> dict[str, Callable[[], object]]:
    """One zero-argument call per benchmarked operation, against the module ``rec``."""
    text = json.dumps(EXAMPLE)
    plain = json.dumps(PLAIN)
    obj = copy.deepcopy(EXAMPLE)
    event = rec.event_from_json(obj)
    data = rec.encode_event(event)
    env = rec.make_envelope(ORIGIN, WRITER, 7, bytes(32), 1_795_000_000_000_000, data)
    leaf = env.leaf
    writers = [WRITER.verifier]
    party = rec.Party(rec.ActorKind.VENDOR_EMPLOYEE, "emp-19", "Vendor Inc")
    recipient = rec.Party(rec.ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
    t0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
    t1 = datetime(2026, 11, 27, 9, 5, tzinfo=UTC)
    clip = rec.Clip("c-88", hashlib.sha256(b"clip").digest(), t0, t1)
    occurred = datetime(2026, 11, 27, 10, 15, 0, 123456, tzinfo=UTC)

    def direct() -> object:
        return rec.Event(
            "4f0c1-2026-11-27-000123",
            occurred,
            "cam-7",
            rec.Action.RELEASE,
            party,
            owner_id="owner-42",
            footage=(clip,),
            recipient=recipient,
            legal_basis=rec.LegalBasis.WARRANT,
            legal_reference="case 26-1193",
            justification="Imminent threat reported by caller.\nSupervisor approved.",
        )

    out: dict[str, Callable[[], object]] = {
        "raw json.loads": lambda: json.loads(text),
        "event_from_json_text": lambda: rec.event_from_json_text(text),
        "  plain ASCII line": lambda: rec.event_from_json_text(plain),
        "event_from_json": lambda: rec.event_from_json(obj),
        "Event(...)": direct,
        "encode_event": lambda: rec.encode_event(event),
        "decode_event": lambda: rec.decode_event(data),
        "parse_envelope": lambda: rec.parse_envelope(leaf),
        "verify_envelope": lambda: rec.verify_envelope(ORIGIN, env, writers),
    }
    if hasattr(rec, "parse_json_line"):  # what the append path calls (not in a baseline)
        out["parse_json_line"] = lambda: rec.parse_json_line(text.encode())
    return out


def raw_cases(message_size: int) -> dict[str, Callable[[], object]]:
    """Ed25519 on a message the size of a record's signing message."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    pub = key.public_key()
    message = bytes(message_size)
    signature = key.sign(message)
    return {
        "raw Ed25519 verify": lambda: pub.verify(signature, message),
        "raw Ed25519 sign": lambda: key.sign(message),
    }


def batch(call: Callable[[], object], n: int) -> float:
    """Seconds per call over one batch of ``n`` calls."""
    rounds = range(n)
    t0 = _clock()
    for _ in rounds:
        call()
    return (_clock() - t0) / n


def measure(
    groups: list[dict[str, Callable[[], object]]], reps: int, n: int
) -> list[dict[str, float]]:
    """Median µs per call for each case in each group, groups interleaved batch by batch."""
    samples: list[dict[str, list[float]]] = [{k: [] for k in g} for g in groups]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for name in groups[0]:
            for g in groups:
                if name in g:
                    batch(g[name], max(1, n // 10))  # warm-up
            for _ in range(reps):
                for g, s in zip(groups, samples, strict=True):
                    if name in g:
                        s[name].append(batch(g[name], n))
                        gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    return [{k: statistics.median(v) * 1e6 for k, v in s.items()} for s in samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    parser.add_argument("--baseline", type=Path, help="an older records.py to compare against")
    args = parser.parse_args()
    reps, n = (9, 200) if args.quick else (31, 1000)

    current = cases(records)
    sample = records.encode_event(records.event_from_json(EXAMPLE))
    msg_size = len(records.signing_message(ORIGIN, bytes(records.HEADER_SIZE) + sample))
    current.update(raw_cases(msg_size))
    groups = [current]
    if args.baseline is not None:
        groups.append(cases(load_baseline(args.baseline)))
    results = measure(groups, reps, n)
    now = results[0]

    print(f"records benchmark: {reps} batches of {n} calls, median µs per call")
    print(f"event encoding {len(sample)} bytes, signing message {msg_size} bytes")
    header = f"{'operation':<24}{'µs/call':>10}"
    if len(results) > 1:
        header += f"{'baseline':>10}{'speed-up':>10}"
    print(header + f"{'target':>9}  result")
    missed = 0
    for name, us in now.items():
        line = f"{name:<24}{us:>10.2f}"
        if len(results) > 1:
            old = results[1].get(name)
            line += f"{old:>10.2f}{old / us:>9.1f}x" if old is not None else " " * 20
        target = TARGETS.get(name)
        if target is None:
            print(line)
            continue
        ok = us <= target
        missed += not ok
        print(line + f"{target:>9.1f}  {'PASS' if ok else 'MISS'}")
    sign = now["raw Ed25519 sign"]
    print(
        f"per appended record: event_from_json_text + sign = "
        f"{now['event_from_json_text'] + sign:.1f} µs "
        f"({now['event_from_json_text'] / sign:.2f}x the raw signing cost)"
    )
    print(
        f"per verified record: parse + verify + decode = "
        f"{now['parse_envelope'] + now['verify_envelope'] + now['decode_event']:.1f} µs "
        f"(raw verify {now['raw Ed25519 verify']:.1f} µs)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
