"""Write-path benchmarks, each a ratio to the raw Ed25519 signing rate measured in the same run.

Run:  python benchmarks/bench_ledger.py            (full: 100k appends, 1M-record flatness)
      python benchmarks/bench_ledger.py --quick    (smaller, for a smoke run)

The raw limit is what the library the ledger signs with (libsodium, through
PyNaCl) signs per second with 2 threads on messages of a record's size, in the
same run (issue 11); targets are judged against it. What `cryptography`
(OpenSSL) signs is printed too, with every figure's ratio to it, for
comparison with the write-path issue's figures. The 8-thread target is against
the lower of that rate and 8 x the raw durable-commit rate (fsync'd one-row
transactions), since 8 callers that each wait for their own commit can go no
faster than 8 commits at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disclosure_ledger._core import records
from disclosure_ledger._core.notes import Signer
from disclosure_ledger._log.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
LOG = Signer("bench.example/ledger", bytes(range(32)))
WRITER = Signer("bench.example/writer", bytes(range(1, 33)))


def event_json(i: int) -> dict[str, Any]:
    base = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=i)
    kinds = ("view", "stream", "download", "release", "share")
    ev: dict[str, Any] = {
        "event_id": f"bench-{i:09d}",
        "occurred_at": base.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "camera_id": f"cam-{i % 97}",
        "owner_id": f"owner-{i % 1013}",
        "action": kinds[i % len(kinds)],
        "actor": {"kind": "vendor_employee", "id": f"emp-{i % 50}", "organization": "Vendor Inc"},
        "footage": [
            {
                "clip_id": f"clip-{i}",
                "sha256": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                "start": (base - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (base - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ],
        "justification": "support ticket 4411: customer reports motion alerts missing",
    }
    if ev["action"] in ("release", "share", "download"):
        ev["recipient"] = {"kind": "law_enforcement", "organization": "Springfield PD"}
        ev["legal_basis"] = "warrant"
        ev["legal_reference"] = f"warrant {i}"
    return ev


def raw_sign_rate(
    message_size: int, seconds: float = 2.0, threads: int = 2, *, libsodium: bool = False
) -> float:
    """Ed25519 signatures per second on ``threads`` threads: OpenSSL's, or libsodium's."""
    msg = os.urandom(message_size)
    stop = time.perf_counter() + seconds
    counts = [0] * threads
    openssl = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))

    def work(k: int) -> None:
        n = 0
        sign = WRITER.sign_raw if libsodium else openssl.sign
        while time.perf_counter() < stop:
            for _ in range(200):
                sign(msg)
            n += 200
        counts[k] = n

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return sum(counts) / (time.perf_counter() - start)


def raw_commit_rate(tmp: Path, n: int = 300) -> float:
    """Durable (WAL, synchronous=FULL) commits per second of one small row: the fsync limit."""
    import sqlite3

    conn = sqlite3.connect(tmp / "fsync.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
    start = time.perf_counter()
    for _ in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (b) VALUES (?)", (b"x" * 300,))
        conn.execute("COMMIT")
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_append_many(tmp: Path, events: list[records.Event], batch: int) -> tuple[float, float]:
    """Appends per second, and records indexed per second by the catch-up afterwards."""
    with Ledger.create(tmp / "many.ledger", log_key=LOG, writers=[WRITER]) as led:
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            led.append_many(events[i : i + batch])
        elapsed = time.perf_counter() - start
        assert led.size == len(events)
        start = time.perf_counter()
        assert led.update_index() == len(events)
        indexing = time.perf_counter() - start
    return len(events) / elapsed, len(events) / indexing


def bench_cli(tmp: Path, n: int) -> float:
    src = tmp / "events.jsonl"
    with src.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps(event_json(10_000_000 + i)) + "\n")
    for name, key in (("log.key", LOG), ("writer.key", WRITER)):
        # The CLI refuses a private key file that others can read.
        (tmp / name).write_text(key.private_key_string() + "\n")
        (tmp / name).chmod(0o600)
    Ledger.create(tmp / "cli.ledger", log_key=LOG).close()
    cmd = [
        sys.executable,
        "-m",
        "disclosure_ledger",
        "append",
        str(tmp / "cli.ledger"),
        "--log-key",
        str(tmp / "log.key"),
        "--writer-key",
        str(tmp / "writer.key"),
        str(src),
    ]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    lines = out.stdout.count("\n")
    assert lines == n, (lines, out.stderr[-500:])
    return n / elapsed


def bench_threads(tmp: Path, threads: int, per_thread: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    with Ledger.create(tmp / "threads.ledger", log_key=LOG, writers=[WRITER]) as led:
        evs = [
            [
                records.event_from_json(event_json(20_000_000 + t * per_thread + k))
                for k in range(per_thread)
            ]
            for t in range(threads)
        ]

        def work(t: int) -> None:
            mine = []
            for ev in evs[t]:
                s = time.perf_counter()
                led.append(ev)
                mine.append(time.perf_counter() - s)
            with lock:
                latencies.extend(mine)

        start = time.perf_counter()
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        elapsed = time.perf_counter() - start
    return threads * per_thread / elapsed, latencies


def bench_single(tmp: Path, n: int) -> list[float]:
    lat = []
    with Ledger.create(tmp / "single.ledger", log_key=LOG, writers=[WRITER]) as led:
        evs = [records.event_from_json(event_json(30_000_000 + i)) for i in range(n)]
        led.append(evs[0])
        for ev in evs[1:]:
            s = time.perf_counter()
            led.append(ev)
            lat.append(time.perf_counter() - s)
    return lat


def bench_flatness(
    tmp: Path, big: int, probe: int, raw_now: Callable[[], float], rounds: int = 3
) -> dict[str, Any]:
    """Append rate as a ratio to the raw signing rate, at 10k and at `big` records.

    The shared machine's speed drifts over the minutes a 1M fill takes, so each
    probe (`probe` prebuilt events in batches of 1,000, as `append_many` above)
    is paired with the raw signing rate measured just before it, and each point
    takes the median of `rounds` probes. Then proof latency at `big`: the first
    2,000 random proofs after reopening the ledger (cold caches), and the next
    2,000 (warm).
    """
    path = tmp / "flat.ledger"
    batch = 2000
    serial = iter(range(50_000_000, 60_000_000))
    out: dict[str, Any] = {}
    with Ledger.create(path, log_key=LOG, writers=[WRITER]) as led:

        def fill(a: int, b: int) -> None:
            for i in range(a, b, batch):
                led.append_many(
                    [records.event_from_json(event_json(i + k)) for k in range(min(batch, b - i))]
                )

        def probe_at(label: str) -> None:
            ratios, rates, raws = [], [], []
            for _ in range(rounds):
                evs = [records.event_from_json(event_json(next(serial))) for _ in range(probe)]
                raw = raw_now()
                start = time.perf_counter()
                for i in range(0, probe, 1000):
                    led.append_many(evs[i : i + 1000])
                rate = probe / (time.perf_counter() - start)
                ratios.append(rate / raw)
                rates.append(rate)
                raws.append(raw)
            out[label] = (
                statistics.median(ratios),
                statistics.median(rates),
                statistics.median(raws),
            )

        fill(0, 10_000)
        probe_at("small")
        filled = 10_000
        step = 50_000
        while filled < big:
            nxt = min(big, filled + step)
            fill(filled, nxt)
            filled = nxt
            print(f"  filled {filled:,}", file=sys.stderr)
        probe_at("big")
        size = led.size
        step_leaf = max(1, size // 1000)
        sampled = range(0, size, step_leaf)
        leaf_bytes = sum(len(led.leaf(i)) for i in sampled) / len(sampled)
    import random

    rng = random.Random(1)
    with Ledger.open(path, readonly=True) as led:
        for label in ("proof_cold", "proof_warm"):
            times = []
            for _ in range(2000):
                i = rng.randrange(size)
                s = time.perf_counter()
                led.inclusion_proof(i)
                times.append(time.perf_counter() - s)
            out[label] = statistics.median(times) * 1e6
        # The machine's state at that moment, for scale: one trivial statement
        # on the same connection, and one SHA-256 of a Merkle node's input.
        conn = led._store._conn
        times = []
        for _ in range(2000):
            s = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - s)
        out["stmt_us"] = statistics.median(times) * 1e6
        node = b"\x01" + bytes(64)
        times = []
        for _ in range(2000):
            s = time.perf_counter()
            hashlib.sha256(node).digest()
            times.append(time.perf_counter() - s)
        out["sha_us"] = statistics.median(times) * 1e6
    led_size = sum(p.stat().st_size for p in tmp.glob("flat.ledger*"))
    out["size"] = size
    out["per_record"] = led_size / size / leaf_bytes if leaf_bytes else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--skip-flatness", action="store_true")
    args = ap.parse_args()
    n_many = 20_000 if args.quick else 100_000
    n_cli = 20_000 if args.quick else 100_000
    big = 100_000 if args.quick else 1_000_000

    sample = records.event_from_json(event_json(1))
    msg_size = len(records.signing_message(LOG.name, b"\0" * 57 + records.encode_event(sample)))
    raw = raw_sign_rate(msg_size)
    sodium = raw_sign_rate(msg_size, libsodium=True)
    print(f"raw limit: Ed25519 signs/s, 2 threads, {msg_size}-byte messages: {raw:,.0f} (OpenSSL)")
    print(f"           the same with libsodium, which the ledger signs with: {sodium:,.0f}")
    rows: list[tuple[str, ...]] = []

    def rate_row(
        label: str, rate: float, target: float | None = None, limit: float | None = None
    ) -> None:
        limit = sodium if limit is None else limit
        verdict = (
            ""
            if target is None
            else f"≥{target}x of {limit:,.0f}/s " + ("PASS" if rate / limit >= target else "MISS")
        )
        rows.append(
            (label, f"{rate:,.0f}/s", f"{rate / raw:.2f}x", f"{rate / sodium:.2f}x", verdict)
        )

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        commits = raw_commit_rate(tmp)
        print(f"raw limit: durable SQLite commits/s (WAL, synchronous=FULL): {commits:,.0f}")
        events = [records.event_from_json(event_json(i)) for i in range(n_many)]
        appended, indexed = bench_append_many(tmp, events, 1000)
        rate_row(f"append_many {n_many:,} (batches of 1000)", appended, 0.8)
        rate_row("  then the query index catching up", indexed)
        del events

        rate_row(f"CLI append {n_cli:,}-line JSONL", bench_cli(tmp, n_cli), 0.6)

        rate, lat = bench_threads(tmp, 8, 1000 if not args.quick else 300)
        rate_row("8 threads x append()", rate, 0.5, min(sodium, 8 * commits))
        rows.append(
            (
                "  latency p50 / p99",
                f"{pct(lat, 0.5) * 1e3:.2f} / {pct(lat, 0.99) * 1e3:.2f} ms",
                "",
                "",
                "",
            )
        )

        lat = bench_single(tmp, 2000 if not args.quick else 500)
        p50 = pct(lat, 0.5) * 1e3
        rows.append(
            (
                "1 thread append() latency p50 / p99",
                f"{p50:.2f} / {pct(lat, 0.99) * 1e3:.2f} ms",
                "",
                "",
                "p50 ≤2ms " + ("PASS" if p50 <= 2 else "MISS"),
            )
        )

        if not args.skip_flatness:
            flat = bench_flatness(tmp, big, 10_000, lambda: raw_sign_rate(msg_size, seconds=1.0))
            (small_ratio, small, small_raw), (big_ratio, bigr, big_raw) = flat["small"], flat["big"]
            size = flat["size"]
            # The target is about slowing down as the ledger grows: judged on the
            # rate itself and on the rate against the raw limit beside it, since
            # either alone can be moved by the machine.
            plain, paired = bigr / small - 1, big_ratio / small_ratio - 1
            verdict = "PASS" if min(plain, paired) >= -0.15 else "MISS"
            rows.append(
                (
                    f"flatness: rate at 10k / at {size:,}",
                    f"{small:,.0f} / {bigr:,.0f}/s",
                    f"{small_ratio:.2f}/{big_ratio:.2f}x",
                    "",
                    f"≤15% slower: {plain:+.0%} plain, {paired:+.0%} paired {verdict}",
                )
            )
            rows.append(
                (
                    "  raw OpenSSL signs/s beside them (medians)",
                    f"{small_raw:,.0f} / {big_raw:,.0f}/s",
                    "",
                    "",
                    f"raw alone moved {big_raw / small_raw - 1:+.0%}",
                )
            )
            for label, key in (("cold", "proof_cold"), ("warm", "proof_warm")):
                rows.append(
                    (
                        f"inclusion proof from store at {size:,}, {label}",
                        f"{flat[key]:.0f} µs median",
                        "",
                        "",
                        "≤100µs " + ("PASS" if flat[key] <= 100 else "MISS"),
                    )
                )
            rows.append(
                (
                    "  for scale: a trivial SQLite statement / a SHA-256",
                    f"{flat['stmt_us']:.1f} / {flat['sha_us']:.2f} µs",
                    "",
                    "",
                    "",
                )
            )
            per_rec = flat["per_record"]
            rows.append(
                ("storage: file bytes per record / leaf bytes", f"{per_rec:.2f}x", "", "", "")
            )

    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'result':>24}  {'/OpenSSL':>8}  {'/sodium':>7}  target")
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:>24}  {r[2]:>8}  {r[3]:>7}  {r[4]}")


if __name__ == "__main__":
    main()
