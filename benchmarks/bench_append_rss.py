"""Peak memory of ``disclosure-ledger append`` on a large JSON Lines file.

Run:  python benchmarks/bench_append_rss.py [--lines 1000000]

Writes ``--lines`` events (those of bench_ledger) to a file, appends it with
the command line in a fresh process and prints that process's peak resident
memory (``ru_maxrss`` of the child; target <= 200 MB for 1,000,000 lines) and
its rate. The reader holds at most a batch of lines and one in flight, so the
peak should not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_ledger import LOG, WRITER, event_json
from disclosure_ledger._log.ledger import Ledger

TARGET_MB = 200.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--lines", type=int, default=1_000_000)
    n = ap.parse_args().lines
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        src = tmp / "events.jsonl"
        with src.open("w") as fh:
            for i in range(n):
                fh.write(json.dumps(event_json(40_000_000 + i)) + "\n")
        for name, key in (("log.key", LOG), ("writer.key", WRITER)):
            (tmp / name).write_text(key.private_key_string() + "\n")
            (tmp / name).chmod(0o600)
        Ledger.create(tmp / "rss.ledger", log_key=LOG).close()
        cmd = [
            sys.executable,
            "-m",
            "disclosure_ledger",
            "append",
            str(tmp / "rss.ledger"),
            "--log-key",
            str(tmp / "log.key"),
            "--writer-key",
            str(tmp / "writer.key"),
            str(src),
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    verdict = "PASS" if peak_mb <= TARGET_MB else "MISS"
    print(f"append of {n:,} lines: {n / elapsed:,.0f} lines/s, peak RSS {peak_mb:.0f} MB")
    print(f"target: peak RSS <= {TARGET_MB:.0f} MB {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
