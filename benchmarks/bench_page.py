"""Benchmark the owner's page: what it adds to verification, and how big and fast it is.

Raw limits, measured in the same run:

* the Ed25519 verification rate of ``cryptography`` on one thread, on a
  message the size of a record's signed content (the verifier's bound per
  record);
* the time to print the same report as JSON (``render_json``), the report's
  other rendering.

Figures:

* the activity tally (accesses per hour by kind, per camera) in records a
  second on one thread, and its cost as a share of one signature check
  (target <= 5%);
* the page of a report as large as a 1,000,000-record ledger makes: a year of
  hourly activity, 1,000 cameras and names per count, and the report's full
  lists (10,000 disclosures of each consent kind, 10,000 staff accesses,
  the default ``--max-listed``). Its build time (target <= 1 s), its build
  time as a ratio to the JSON report's, and its size (target <= 5 MB).

A report's size does not grow with the ledger beyond these caps, which is why
a synthetic report of the capped size stands for a million records.

Usage::

    python benchmarks/bench_page.py [--repeat N]

The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disclosure_ledger._core import records
from disclosure_ledger._verify.activity import ActivityTally
from disclosure_ledger._verify.page import render_page
from disclosure_ledger._verify.report import render_json
from disclosure_ledger._verify.summary import Disclosure, FootageRef, Report

START = datetime(2025, 12, 1, tzinfo=UTC)


def _median_rate(work: Callable[[], int], batches: int) -> float:
    rates = []
    for _ in range(batches):
        t0 = time.perf_counter()
        n = work()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def _median_time(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ed25519_rate(batches: int) -> float:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = os.urandom(300)
    signature = key.sign(message)

    def work() -> int:
        for _ in range(2000):
            public.verify(signature, message)
        return 2000

    return _median_rate(work, batches)


def tally_rate(batches: int) -> float:
    times = [START + timedelta(seconds=37 * i) for i in range(20_000)]
    cameras = [f"cam-{i % 40}" for i in range(20_000)]

    def work() -> int:
        t = ActivityTally()
        add = t.add
        for i in range(20_000):
            add(times[i], cameras[i], i & 3, without_consent=(i & 7) == 3)
        t.result()
        return 20_000

    return _median_rate(work, batches)


def _disclosure(i: int, without: bool) -> Disclosure:
    at = START + timedelta(minutes=52 * i)
    clip = FootageRef(
        f"clip-{i}",
        hashlib.sha256(str(i).encode()).hexdigest(),
        records.format_time(at - timedelta(minutes=10)),
        records.format_time(at - timedelta(minutes=5)),
    )
    return Disclosure(
        index=i * 50,
        event_id=f"ev-{i:08d}",
        occurred_at=records.format_time(at),
        camera_id=f"cam-{i % 1000}",
        action="release",
        actor_kind="vendor_employee",
        actor_id=f"emp-{i % 97}",
        actor_organization="Vendor Inc",
        recipient_kind="law_enforcement",
        recipient_id=None,
        recipient_organization=f"Police department {i % 300}",
        legal_basis="emergency" if without else "owner_consent",
        legal_reference=f"case 26-{i}",
        justification="Officer reported an imminent threat at the address; footage requested.",
        consent=not without,
        without_consent=without,
        owner_notified_at=None if i % 3 else records.format_time(at + timedelta(days=2)),
        notification_deferred_until=None if i % 5 else records.format_time(at + timedelta(days=90)),
        footage=(clip,),
        footage_count=1,
    )


def big_report() -> Report:
    listed = 10_000
    tally = ActivityTally()
    for hour in range(24 * 365):
        at = START + timedelta(hours=hour)
        for kind in range(4):
            tally.add(at, f"cam-{(hour * 4 + kind) % 1000}", kind, without_consent=kind == 3)
    names = tuple((f"name-{i:04d}", 1000 - i) for i in range(1000))
    staff = tuple(
        replace(
            _disclosure(i, False),
            action="view",
            recipient_kind=None,
            recipient_organization=None,
            access_class=records.AccessClass.VENDOR_STAFF.value,
        )
        for i in range(listed)
    )
    disclosures = tuple(_disclosure(i, True) for i in range(listed)) + tuple(
        _disclosure(i, False) for i in range(listed, 2 * listed)
    )
    return Report(
        origin="vendor.example/ledger/owner-42",
        size=1_000_000,
        from_size=0,
        root=bytes(32),
        checkpoint="",
        log_key="vendor.example/ledger/owner-42+00000000+AQ",
        cosigners=("owner-app.example/owner-42",),
        quorum="a cosignature by witness app",
        first_occurred_at=records.format_time(START),
        last_occurred_at=records.format_time(START + timedelta(days=365)),
        first_logged_at=records.format_time(START),
        last_logged_at=records.format_time(START + timedelta(days=365)),
        actions=names,
        legal_bases=names[:6],
        recipient_organizations=names,
        writers=names[:4],
        disclosures=disclosures,
        disclosure_count=25_000,
        without_consent_count=15_000,
        consistency=("consistent with the saved state of size 900000",),
        staff_accesses=staff,
        staff_access_count=400_000,
        system_access_count=300_000,
        activity=tally.result(),
        state_saved=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="Runs per timed figure.")
    args = parser.parse_args()
    missed = False

    def figure(name: str, value: str, ok: bool, target: str) -> None:
        nonlocal missed
        missed |= not ok
        print(f"  {name:<44} {value:>16}   target {target:<10} {'PASS' if ok else 'MISS'}")

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    print("raw limits:")
    ed = ed25519_rate(args.repeat * 3)
    print(f"  Ed25519 verify, 1 thread                     {ed:>16,.0f} /s")
    report = big_report()
    json_s = _median_time(lambda: render_json(report), args.repeat)
    print(f"  JSON report of the 1M-record report          {json_s:>16.3f} s")
    print("figures:")
    tally = tally_rate(args.repeat * 3)
    figure("activity tally, 1 thread", f"{tally:,.0f} /s", True, "")
    share = ed / tally
    figure("tally cost per record / one signature check", f"{share:.1%}", share <= 0.05, "<= 5%")
    now = START + timedelta(days=370)
    page_s = _median_time(lambda: render_page(report, now=now), args.repeat)
    size = len(render_page(report, now=now).encode())
    figure("page of the 1M-record report, build time", f"{page_s:.3f} s", page_s <= 1.0, "<= 1 s")
    figure("page build time / JSON report time", f"{page_s / json_s:.2f}", True, "")
    figure("page size", f"{size / 1e6:.2f} MB", size <= 5_000_000, "<= 5 MB")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
