"""PostgreSQL benchmarks, each beside the raw limits measured in the same run.

Run:  python benchmarks/bench_postgres.py            (full: 1M-record log, 100,000 logs)
      python benchmarks/bench_postgres.py --quick    (smaller, for a smoke run)
      python benchmarks/bench_postgres.py --url postgresql://...   (an existing server)

Without --url it starts its own server (initdb + pg_ctl from the machine's
PostgreSQL, as the tests do, but with fsync on: a commit is on disk) on the
same 2 cores the writers use. The raw limits: Ed25519 signatures per second on
2 threads (OpenSSL, as bench_ledger.py; libsodium's is printed too), and the
one-row transactions per second the server commits for one client, and for 8.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' server helper

import psycopg  # noqa: E402
from benchmarks.bench_ledger import event_json, pct, raw_sign_rate  # noqa: E402
from tests.pg_server import PgServer, find_bindir  # noqa: E402

from disclosure_ledger._core import records  # noqa: E402
from disclosure_ledger._core.merkle import verify_inclusion  # noqa: E402
from disclosure_ledger._core.notes import Signer  # noqa: E402
from disclosure_ledger._log.database import LedgerDatabase  # noqa: E402
from disclosure_ledger._store.pg_schema import log_id_of  # noqa: E402
from disclosure_ledger.keys import derive_log_key  # noqa: E402

MASTER = Signer("bench.example/log-master", bytes(range(32)))
WRITER = Signer("bench.example/writer", bytes(range(1, 33)))


def origin(k: int) -> str:
    return f"bench.example/owner-{k}"


def key(k: int) -> Signer:
    return derive_log_key(MASTER, origin(k))


def raw_commit_rate(url: str, clients: int, seconds: float = 3.0) -> float:
    """One-row INSERT transactions per second, ``clients`` connections at once (autocommit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commit")
        conn.execute("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, b bytea)")
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def work(k: int) -> None:
        with psycopg.connect(url, autocommit=True) as c:
            n = 0
            while time.perf_counter() < stop:
                c.execute("INSERT INTO bench_commit (b) VALUES (%s)", (b"x" * 300,))
                n += 1
            counts[k] = n

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def create_logs(url: str, first: int, count: int) -> None:
    with LedgerDatabase.connect(url, create_schema=True) as db:
        for k in range(first, first + count):
            db.create(log_key=key(k), writers=[WRITER]).close()


def fill_filler_logs(url: str, logs: int, per_log: int) -> None:
    """Rows of ``logs`` other logs, ``per_log`` records each, written straight with SQL.

    They only make the tables and their indexes as large as a database of that
    many logs (they are not signed records and would not pass ``check``): the
    flatness figure asks whether appends to one log slow down as the B-trees
    grow, and these rows grow them at the speed of SQL.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET search_path = disclosure_ledger")
        step = 10_000
        for a in range(0, logs, step):
            ids = [log_id_of(f"filler.example/owner-{k}") for k in range(a, min(logs, a + step))]
            names = [f"filler.example/owner-{k}" for k in range(a, min(logs, a + step))]
            with conn.transaction():
                conn.execute(
                    "INSERT INTO logs (log_id, origin, log_key, size)"
                    " SELECT i, o, 'filler', %s FROM unnest(%s::bigint[], %s::text[]) AS t(i, o)",
                    (per_log, ids, names),
                )
                conn.execute(
                    "INSERT INTO records (log_id, seq, leaf)"
                    " SELECT i, s, decode(repeat('ab', 600), 'hex')"
                    " FROM unnest(%s::bigint[]) AS i, generate_series(0, %s - 1) AS s",
                    (ids, per_log),
                )
                conn.execute(
                    "INSERT INTO event_ids (log_id, event_id, seq) SELECT i, 'ev-' || s, s"
                    " FROM unnest(%s::bigint[]) AS i, generate_series(0, %s - 1) AS s",
                    (ids, per_log),
                )
                conn.execute(
                    "INSERT INTO hashes (log_id, first, run)"
                    " SELECT i, 0, decode(repeat('cd', %s), 'hex')"
                    " FROM unnest(%s::bigint[]) AS i",
                    (32 * (2 * per_log - per_log.bit_count()), ids),
                )
                conn.execute(
                    "INSERT INTO checkpoints (log_id, size, note) SELECT i, %s, 'filler'"
                    " FROM unnest(%s::bigint[]) AS i",
                    (per_log, ids),
                )
            print(f"  filler logs: {min(logs, a + step):,}", file=sys.stderr)
        conn.execute("VACUUM ANALYZE")
        with contextlib.suppress(psycopg.Error):  # needs the right to; then skipped
            conn.execute("CHECKPOINT")  # the load's dirty pages written before measuring


def bulk_rate(url: str, k: int, n: int, batch: int = 1000) -> float:
    events = [records.event_from_json(event_json(i)) for i in range(n)]
    with LedgerDatabase.connect(url) as db:
        led = db.open(origin(k), log_key=key(k), writers=[WRITER])
        start = time.perf_counter()
        # Two batches in flight, as append_jsonl keeps them: one commits while
        # the next is sequenced and signed.
        pending = []
        for i in range(0, n, batch):
            pending.append(led.submit(events[i : i + batch]))
            if len(pending) > 2:
                pending.pop(0).result()
        for fut in pending:
            fut.result()
        return n / (time.perf_counter() - start)


def _worker(job: tuple[str, list[int], int, float, str], out: Any) -> None:
    try:
        _work(job, out)
    except BaseException as err:
        out.put(f"{type(err).__name__}: {err}")
        raise


def _work(job: tuple[str, list[int], int, float, str], out: Any) -> None:
    url, logs, threads, seconds, tag = job
    with LedgerDatabase.connect(url, pool_size=4) as db:
        ledgers = [db.open(origin(k), log_key=key(k), writers=[WRITER]) for k in logs]
        latencies: list[list[float]] = [[] for _ in range(threads)]
        start_at = time.perf_counter() + 1.0  # every thread starts together
        stop_at = start_at + seconds

        def work(t: int) -> None:
            rng = random.Random(f"{tag}-{t}")
            n = 0
            while time.perf_counter() < start_at:
                time.sleep(0.001)
            while time.perf_counter() < stop_at:
                ev = event_json(n)
                ev["event_id"] = f"{tag}-{t}-{n}"
                led = ledgers[rng.randrange(len(ledgers))]
                t0 = time.perf_counter()
                led.append(ev)
                latencies[t].append(time.perf_counter() - t0)
                n += 1

        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        out.put([x for lat in latencies for x in lat])


def writers_rate(
    url: str, logs: list[int], processes: int, *, threads: int, seconds: float, tag: str
) -> tuple[float, float, float]:
    """Appends/s of ``processes`` writer processes (``threads`` each), with p50 and p99 in ms."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=((url, logs, threads, seconds, f"{tag}{p}"), out))
        for p in range(processes)
    ]
    for p in procs:
        p.start()
    got: list[float] = []
    for _ in procs:
        part = out.get(timeout=600)
        if isinstance(part, str):
            raise SystemExit(f"a writer process failed: {part}")
        got += part
    for p in procs:
        p.join()
    return len(got) / seconds, pct(got, 0.5) * 1e3, pct(got, 0.99) * 1e3


def proof_median_us(url: str, k: int, size: int, samples: int = 2000) -> float:
    with LedgerDatabase.connect(url, readonly=True) as db:
        led = db.open(origin(k))
        rng = random.Random(7)
        root = led.latest_checkpoint().checkpoint.root
        times = []
        for _ in range(samples):
            i = rng.randrange(size)
            t0 = time.perf_counter()
            proof = led.inclusion_proof(i, size)
            times.append(time.perf_counter() - t0)
        verify_inclusion(led.record(i).leaf_hash, i, size, proof, root)
        return statistics.median(times) * 1e6


def export_rate(url: str, k: int) -> float:
    with LedgerDatabase.connect(url, readonly=True) as db, tempfile.TemporaryDirectory() as tmp:
        led = db.open(origin(k))
        start = time.perf_counter()
        summary = led.export(Path(tmp) / "one.bundle")
        return summary.record_count / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--url", help="an existing server's database (default: start one)")
    args = ap.parse_args()
    big = 100_000 if args.quick else 1_000_000
    filler_logs = 10_000 if args.quick else 100_000
    seconds = 5.0 if args.quick else 10.0

    server = None
    url = args.url
    if url is None:
        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL binaries found; give --url")
        server = PgServer.start_own(bindir, fsync=True)
        url = server.new_database("bench")
    rows: list[tuple[str, str, str]] = []
    try:
        sign = raw_sign_rate(1100)
        sodium = raw_sign_rate(1100, libsodium=True)
        commit1 = raw_commit_rate(url, 1)
        commit8 = raw_commit_rate(url, 8)
        print(f"raw: Ed25519 signs/s, 2 threads: {sign:,.0f} (OpenSSL), {sodium:,.0f} (libsodium)")
        print(
            f"raw: one-row commits/s on this server: {commit1:,.0f} (1 client), {commit8:,.0f} (8)"
        )

        def row(label: str, rate: float, target: float | None, extra: str = "") -> None:
            ratio = rate / sign
            verdict = (
                "" if target is None else (f"≥{target}x " + ("PASS" if ratio >= target else "MISS"))
            )
            rows.append((label, f"{rate:,.0f}/s {extra}", f"{ratio:.2f}x {verdict}"))
            print(
                f"  {label}: {rate:,.0f}/s {extra} = {ratio:.2f}x signing {verdict}",
                file=sys.stderr,
            )

        create_logs(url, 0, 1_001)
        row(f"bulk appends to one log ({big:,})", bulk_rate(url, 0, big), 0.5)
        rate, p50, p99 = writers_rate(
            url, list(range(1, 1001)), 8, threads=64, seconds=seconds, tag="many"
        )
        row("8 processes over 1,000 logs", rate, 0.5, f"p50 {p50:.1f} ms p99 {p99:.1f} ms")
        rate, p50, p99 = writers_rate(url, [1], 8, threads=64, seconds=seconds, tag="one")
        row("8 processes on one log", rate, 0.5, f"p50 {p50:.1f} ms p99 {p99:.1f} ms")
        med = proof_median_us(url, 0, big)
        rows.append(
            (
                f"inclusion proof, log of {big:,}",
                f"median {med:.0f} µs",
                "≤500µs " + ("PASS" if med <= 500 else "MISS"),
            )
        )
        exp = export_rate(url, 0)
        rows.append(
            (
                "export of one log among 1,000",
                f"{exp:,.0f} records/s",
                "≥50,000 " + ("PASS" if exp >= 50_000 else "MISS"),
            )
        )

        # Flatness: appends to 10 logs in a database of 10 logs, and in one where
        # they are among 100,000 (1M records in all); alternated, medians.
        alone = url if server is None else server.new_database("alone")
        among = url if server is None else server.new_database("among")
        create_logs(alone, 2000, 10)
        create_logs(among, 2000, 10)
        fill_filler_logs(among, filler_logs, 10)
        ten = list(range(2000, 2010))
        few: list[float] = []
        many: list[float] = []
        for r in range(3):
            for db_url, out in ((alone, few), (among, many)):
                got = writers_rate(
                    db_url, ten, 4, threads=16, seconds=seconds, tag=f"f{r}{len(out)}"
                )
                out.append(got[0])
        drop = (statistics.median(few) - statistics.median(many)) / statistics.median(few)
        rows.append(
            (f"appends to 10 logs: alone vs among {filler_logs:,}",
             f"{statistics.median(few):,.0f} vs {statistics.median(many):,.0f}/s",
             f"{-drop:+.0%} " + ("PASS" if drop <= 0.15 else "MISS"))
        )  # fmt: skip
    finally:
        if server is not None:
            server.destroy()
    print()
    print(f"raw: Ed25519 signs/s, 2 threads: {sign:,.0f} (OpenSSL), {sodium:,.0f} (libsodium)")
    print(f"raw: one-row commits/s: {commit1:,.0f} (1 client), {commit8:,.0f} (8 clients)")
    for label, result, verdict in rows:
        print(f"{label:<45} {result:>40}  {verdict}")
    if any("MISS" in v for _, _, v in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
