"""Benchmark publishing as C2SP tlog-tiles and verifying through tiles.

Raw limits, measured in the same run:

* writing the publication's files with a plain ``write_bytes`` each (no temporary
  name, no fsync): the file system's own rate for these files;
* verifying the same ledger exported as a bundle with ``verify()``.

Figures (medians of ``--runs`` runs):

* a full publish of N records (default 20,000), as a ratio to the plain write
  (it adds a temporary file, an fsync, a rename and a directory fsync per file:
  the price of a publication that survives a crash; reported, no target);
* an incremental publish after 100 more records (target <= 0.5 s);
* ``verify_published`` from the directory and over HTTP on 127.0.0.1, as ratios
  to ``verify()`` of the bundle (target >= 0.6: the tiles path adds fetching,
  decoding and the hash-tile check on the main thread).

Usage::

    python benchmarks/bench_tiles.py [--records N] [--runs R]

The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from disclosure_ledger import Ledger, Policy, Signer, publication, publish, verify
from disclosure_ledger._verify.tiles import verify_published

ORIGIN = "bench.example/ledger"


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"ev-{i:09d}",
        "occurred_at": "2026-11-27T10:15:00Z",
        "camera_id": f"cam-{i % 7}",
        "action": "view",
        "actor": {"kind": "vendor_employee", "id": f"emp-{i % 13}", "organization": "Vendor"},
        "justification": "support ticket",
    }


def _median(
    runs: int, fn: Callable[[], object], setup: Callable[[], object] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n, runs = args.records, args.runs
    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    failed = False
    try:
        key = Signer(ORIGIN, bytes(range(32)))
        policy = Policy.simple(key.verifier)
        with Ledger.create(work / "l.ledger", log_key=key) as lg:
            for start in range(0, n, 2000):
                lg.append_many([_event(i) for i in range(start, min(n, start + 2000))])
            files = list(publication(lg))
            out = work / "plain"

            def plain() -> None:
                for path, data in files:
                    target = out / path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)

            t_plain = _median(runs, plain, lambda: shutil.rmtree(out, ignore_errors=True))
            pub = work / "pub"
            t_pub = _median(
                runs, lambda: publish(lg, pub), lambda: shutil.rmtree(pub, ignore_errors=True)
            )
            lg.export(work / "b.bundle")
            lg.append_many([_event(n + i) for i in range(100)])
            t_inc = _median(1, lambda: publish(lg, pub))
        size = sum(len(d) for _, d in files)
        print(f"records {n}, files {len(files)}, bytes {size}")
        ratio = t_plain / t_pub
        print(
            f"plain write of the files      {t_plain:8.3f} s  (raw limit)\n"
            f"publish, full                 {t_pub:8.3f} s  {n / t_pub:10.0f} records/s"
            f"  ratio {ratio:.2f}  (durability: fsync and rename per file)"
        )
        ok = t_inc <= 0.5
        failed |= not ok
        print(
            f"publish, +100 records         {t_inc:8.3f} s"
            f"                              target <= 0.5 s {'PASS' if ok else 'MISS'}"
        )
        # The published directory is now at n + 100; verify a copy at n for a like comparison.
        shutil.rmtree(pub)
        with Ledger.open(work / "l.ledger", readonly=True) as lg:
            for path, data in publication(lg, checkpoint=lg.checkpoint(n)):
                (pub / path).parent.mkdir(parents=True, exist_ok=True)
                (pub / path).write_bytes(data)
        handler = functools.partial(_Quiet, directory=str(pub))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        # Interleaved, round by round, so a burst of load from a neighbour
        # falls on all three rather than on one.
        rounds: dict[str, list[float]] = {"bundle": [], "dir": [], "http": []}
        checks: dict[str, Callable[[], object]] = {
            "bundle": lambda: verify(work / "b.bundle", policy),
            "dir": lambda: verify_published(str(pub), policy),
            "http": lambda: verify_published(url, policy),
        }
        try:
            for _ in range(runs):
                for name, check in checks.items():
                    rounds[name].append(_median(1, check))
        finally:
            server.shutdown()
            server.server_close()
        t_bundle, t_dir, t_http = (statistics.median(rounds[k]) for k in ("bundle", "dir", "http"))
        print(f"verify(bundle)                {t_bundle:8.3f} s  {n / t_bundle:10.0f} records/s")
        for name, t in (("directory", t_dir), ("http 127.0.0.1", t_http)):
            ratio = t_bundle / t
            ok = ratio >= 0.6
            failed |= not ok
            print(
                f"verify --tiles {name:15s}{t:8.3f} s  {n / t:10.0f} records/s"
                f"  ratio {ratio:.2f}  target >= 0.6  {'PASS' if ok else 'MISS'}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
