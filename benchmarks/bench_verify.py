"""Benchmark owner verification and export against the raw Ed25519 verify rate.

Every figure is measured in the same run as its raw limit: the Ed25519
verification rate of ``cryptography`` with two threads, on messages the size
of a record's signed content. Figures:

* verifying an N-record bundle (default 1,000,000), as a ratio to the raw
  rate (target >= 0.8), in a fresh subprocess;
* that subprocess's peak memory (``ru_maxrss``; target <= 150 MB);
* verifying a range bundle of the last 1,000 records against saved state
  (target <= 1 s);
* exporting a ledger (target >= 100,000 records a second).

The N-record bundle is built directly with the library's envelope functions
(``records.encode_content`` / ``records.signing_message``), signed on a
two-thread pool, because appending a million records through the ledger
would take far longer and is not what is measured. The events vary (ids,
times, cameras, 1 in 5 a release to the police, so that the report's cost is
counted) and are encoded canonically.
Export is measured on a real ledger of ``min(N, 100,000)`` records.

Usage::

    python benchmarks/bench_verify.py [--records N] [--keep DIR]

The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cryptography
import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disclosure_ledger._core import records
from disclosure_ledger._core.bundle import Prelude, write_bundle
from disclosure_ledger._core.checkpoints import Checkpoint, open_checkpoint, sign_checkpoint
from disclosure_ledger._core.merkle import (
    CompactRange,
    MemoryHashStore,
    prove_consistency,
    prove_inclusion,
)
from disclosure_ledger._core.merkle import leaf_hash as _leaf_hash
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._log.export import export_ledger
from disclosure_ledger._log.ledger import Ledger
from disclosure_ledger._verify.verifier import save_state

ORIGIN = "bench.example/ledger/owner-1"
LOG = Signer(ORIGIN, bytes(range(32)))
WRITER = Signer("bench.example/writer/backend-1", bytes(range(1, 33)))
RANGE = 1000
VERIFY_TARGET = 0.8
MEMORY_TARGET_MB = 150.0
RANGE_TARGET_S = 1.0
EXPORT_TARGET = 100_000.0
_clock = time.perf_counter


def raw_verify_rate(threads: int = 2, batch: int = 4000, reps: int = 9) -> tuple[float, float]:
    """Ed25519 verifications a second on ``threads`` threads, and CPU seconds per verification.

    Both are medians over ``reps`` batches.
    """
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msgs = [os.urandom(400) for _ in range(64)]
    sigs = [key.sign(m) for m in msgs]
    per = batch // threads

    def work(_: int) -> None:
        for i in range(per):
            pub.verify(sigs[i & 63], msgs[i & 63])

    rates, cpus = [], []
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(reps):
            t, c = _clock(), time.process_time()
            list(pool.map(work, range(threads)))
            rates.append(per * threads / (_clock() - t))
            cpus.append((time.process_time() - c) / (per * threads))
    return statistics.median(rates), statistics.median(cpus)


def _template(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "event_id": "x",
        "occurred_at": "2026-01-01T00:00:00Z",
        "camera_id": "cam-0",
        "owner_id": "owner-1",
        "action": "view",
        "actor": {"kind": "vendor_employee", "id": "emp-1", "organization": "Vendor Inc"},
        "footage": [
            {
                "clip_id": "clip-0",
                "sha256": "00" * 32,
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-01T00:05:00Z",
            }
        ],
        "justification": "support ticket",
    }
    fields.update(overrides)
    ev = records.event_from_json(fields)
    # msgpack keeps the canonical key order; replacing values of the same
    # types below keeps the encoding canonical (a test in the suite decodes one).
    obj: dict[str, object] = msgpack.unpackb(records.encode_event(ev), raw=False, timestamp=3)
    return obj


_VIEW = _template()
_RELEASE = _template(
    action="release",
    recipient={"kind": "law_enforcement", "organization": "Springfield PD"},
    legal_basis="emergency",
    legal_reference="case 0",
)


DISCLOSE_EVERY = 5
"""One record in this many is a release without consent (issue 11's stress case)."""


def _event_bytes(i: int, base: datetime) -> bytes:
    """The canonical encoding of event ``i``: 1 in DISCLOSE_EVERY is a release without consent."""
    obj = dict(_RELEASE if i % DISCLOSE_EVERY == DISCLOSE_EVERY - 1 else _VIEW)
    obj["event_id"] = f"ev-{i:09d}"
    obj["occurred_at"] = base + timedelta(seconds=i)
    obj["camera_id"] = f"cam-{i % 4}"
    if "legal_reference" in obj:
        obj["legal_reference"] = f"case {i}"
    return bytes(msgpack.packb(obj, use_bin_type=True, datetime=True))


def build_bundle(directory: Path, n: int) -> tuple[Path, Path, Path, float]:
    """Write a full bundle of ``n`` records, a range bundle of the last 1,000 and a state dir.

    Returns (full bundle, range bundle, state directory, seconds taken).
    """
    t0 = _clock()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    logged = 1_767_225_600_000_000
    prefix = records.signing_message(ORIGIN, b"")
    store = MemoryHashStore()
    cr = CompactRange()
    m = max(n - RANGE, 0)
    leaves_path = directory / "leaves.tmp"
    prev = records.GENESIS_PREV
    block = 4096
    old_root = b""
    anchor_leaf = b""
    with ThreadPoolExecutor(2) as pool, leaves_path.open("wb") as spill:
        for lo in range(0, n, block):
            contents = []
            for i in range(lo, min(n, lo + block)):
                content = records.encode_content(
                    i, prev, logged + i, WRITER.key_id, _event_bytes(i, base)
                )
                prev = records.chain_hash(content)
                contents.append(content)
            half = (len(contents) + 1) // 2

            def sign(part: list[bytes]) -> list[bytes]:
                return [WRITER.sign_raw(prefix + c) for c in part]

            sigs = [s for part in pool.map(sign, [contents[:half], contents[half:]]) for s in part]
            for i, (c, s) in enumerate(zip(contents, sigs, strict=True), lo):
                leaf = c + s
                spill.write(len(leaf).to_bytes(4, "big") + leaf)
                h = _leaf_hash(leaf)
                store.append(h)
                cr.append(h)
                if i == m - 1:
                    anchor_leaf = leaf
                if i + 1 == m:
                    old_root = cr.root()
    root = cr.root()
    keys = (LOG.verifier.vkey, WRITER.verifier.vkey)
    note = sign_checkpoint(Checkpoint(ORIGIN, n, root), LOG)

    def leaves(start: int) -> Iterator[bytes]:
        with leaves_path.open("rb") as fh:
            i = 0
            while head := fh.read(4):
                leaf = fh.read(int.from_bytes(head, "big"))
                if i >= start:
                    yield leaf
                i += 1

    full = directory / "full.bundle"
    with full.open("wb", buffering=1 << 20) as out:
        write_bundle(out, Prelude(ORIGIN, 0, n, keys, note), leaves(0))
    ranged = directory / "range.bundle"
    state = directory / "state"
    if m > 0:
        old_note = sign_checkpoint(Checkpoint(ORIGIN, m, old_root), LOG)
        prelude = Prelude(
            ORIGIN,
            m,
            n,
            keys,
            note,
            old_note,
            tuple(prove_consistency(m, n, store)),
            anchor_leaf,
            tuple(prove_inclusion(m - 1, m, store)),
        )
        with ranged.open("wb", buffering=1 << 20) as out:
            write_bundle(out, prelude, leaves(m))
        save_state(state, open_checkpoint(old_note, LOG.verifier))
    leaves_path.unlink()
    return full, ranged, state, _clock() - t0


_CHILD = """
import json, resource, sys, time
from disclosure_ledger._core.notes import parse_verifier
from disclosure_ledger._core.policy import Policy
from disclosure_ledger._verify.verifier import verify
policy = Policy.simple(parse_verifier(sys.argv[2]), [parse_verifier(sys.argv[3])])
state = sys.argv[4] if len(sys.argv) > 4 else None
t = time.perf_counter()
report = verify(sys.argv[1], policy, state_dir=state)
elapsed = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM is this process image's own peak; ru_maxrss would also count the
# parent's pages at fork time (Linux carries it across exec).
peak_kb = usage.ru_maxrss
try:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
except OSError:
    pass
print(json.dumps({"seconds": elapsed, "records": report.record_count, "peak_kb": peak_kb,
                  "cpu": usage.ru_utime + usage.ru_stime,
                  "disclosures": report.disclosure_count}))
"""


def run_child(bundle: Path, state: Path | None = None) -> dict[str, float]:
    """Verify ``bundle`` in a fresh interpreter; return its timing and peak memory."""
    args = [sys.executable, "-c", _CHILD, str(bundle), LOG.verifier.vkey, WRITER.verifier.vkey]
    if state is not None:
        args.append(str(state))
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def export_rate(directory: Path, n: int) -> tuple[float, int]:
    """Build a ledger of ``n`` records and return (records a second exported, n)."""
    directory = Path(tempfile.mkdtemp(prefix="export-", dir=directory))
    path = directory / "export.ledger"
    with Ledger.create(path, log_key=LOG, writers=[WRITER]) as lg:
        events = [
            {
                "event_id": f"ev-{i:09d}",
                "occurred_at": "2026-01-01T00:00:00Z",
                "camera_id": f"cam-{i % 4}",
                "action": "view",
                "actor": {"kind": "vendor_employee", "organization": "Vendor Inc"},
            }
            for i in range(n)
        ]
        for lo in range(0, n, 8192):
            lg.append_many(events[lo : lo + 8192])
    times = []
    with Ledger.open(path, readonly=True) as lg:
        for _ in range(3):
            t = _clock()
            export_ledger(lg, directory / "export.bundle")
            times.append(_clock() - t)
    return n / statistics.median(times), n


def main() -> int:
    """Run the benchmark, print the table, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="Build the bundles in DIR and keep them.")
    args = parser.parse_args()
    n = args.records
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__},")
    print(f"{os.cpu_count()} CPUs, {platform.machine()}; {n:,} records")
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory / f"built-{n}"
        full, ranged, state = (directory / x for x in ("full.bundle", "range.bundle", "state"))
        if marker.exists():
            print(f"reusing the bundles in {directory}")
        else:
            full, ranged, state, built = build_bundle(directory, n)
            marker.touch()
            print(f"built the bundles in {built:.1f} s ({full.stat().st_size / 1e6:.1f} MB)")
        raw_before, cpu_before = raw_verify_rate()
        print(f"raw Ed25519 verify, 2 threads, before: {raw_before:,.0f}/s")
        child = run_child(full)
        raw_after, cpu_after = raw_verify_rate()
        raw = (raw_before + raw_after) / 2
        raw_cpu = (cpu_before + cpu_after) / 2
        print(f"raw Ed25519 verify, 2 threads, after:  {raw_after:,.0f}/s (the mean is used)")
        rate = child["records"] / child["seconds"]
        cpu_share = raw_cpu * child["records"] / child["cpu"]
        print(
            f"verify used {child['cpu']:.0f} CPU-s for {child['seconds']:.0f} s wall;"
            f" signature checks are {cpu_share:.0%} of that CPU time"
            f" (raw {raw_cpu * 1e6:.0f} CPU-us a verification)"
        )
        rss_mb = child["peak_kb"] / 1024
        range_s = 0.0
        if n > RANGE:
            # A copy: a successful run advances the state, and a rerun must start from N - 1000.
            fresh = Path(tmp) / "state-copy"
            shutil.copytree(state, fresh)
            range_s = run_child(ranged, fresh)["seconds"]
        exp, exp_n = export_rate(directory, min(n, 100_000))
    rows = [
        (
            f"verify {n:,}-record bundle",
            f"{rate:,.0f}/s = {rate / raw:.2f}x raw",
            f">= {VERIFY_TARGET}x",
            rate / raw >= VERIFY_TARGET,
        ),
        (
            "peak memory of that run",
            f"{rss_mb:.0f} MB",
            f"<= {MEMORY_TARGET_MB:.0f} MB",
            rss_mb <= MEMORY_TARGET_MB,
        ),
        (
            f"range bundle, last {RANGE:,} records",
            f"{range_s:.3f} s",
            f"<= {RANGE_TARGET_S} s",
            range_s <= RANGE_TARGET_S,
        ),
        (
            f"export ({exp_n:,}-record ledger)",
            f"{exp:,.0f} records/s",
            f">= {EXPORT_TARGET:,.0f}/s",
            exp >= EXPORT_TARGET,
        ),
    ]
    print()
    print(f"{'figure':<34} {'measured':<28} {'target':<14} result")
    for name, value, target, ok in rows:
        print(f"{name:<34} {value:<28} {target:<14} {'PASS' if ok else 'MISS'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
