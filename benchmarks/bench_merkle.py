"""Benchmark the Merkle core against the raw limits of the machine it runs on.

Every figure is printed next to the raw limit it is measured against, taken in
the same run: SHA-256 on a 65-byte input (one RFC 6962 node hash) and Ed25519
signing and verification (``cryptography``, one and two threads). Timings are
medians over many repeated batches (``time.perf_counter``), because the machines
this runs on are shared and noisy; each Merkle batch is paired with a SHA-256
batch timed just before it, and ratios are the median of the per-pair ratios.

Usage::

    python benchmarks/bench_merkle.py [--leaves N] [--quick] [--seed S]

``--quick`` uses 65,536 leaves and fewer repetitions (a smoke test, seconds).
The full run (1,000,000 leaves) takes well under a minute on two cores.
The exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from disclosure_ledger._core import merkle

_clock = time.perf_counter

PROOF_TARGET_US = 50.0
VERIFY_TARGET_RATIO = 2.0
APPEND_TARGET_RATIO = 0.5


@dataclass(frozen=True, slots=True)
class Config:
    leaves: int
    cases: int  # distinct random proofs per batch
    reps: int  # repeated batches; the median counts
    sha_batch: int  # SHA-256 calls per raw-limit batch
    pair_batch: int  # SHA-256 calls in the batch paired with each Merkle batch
    sign_batch: int
    append_batch: int


def _config(leaves: int | None, quick: bool) -> Config:
    # Short batches and many of them: on a shared machine a batch that a
    # neighbour's burst lands in is an outlier the median discards, where a
    # long batch would average the burst in.
    if quick:
        return Config(leaves or 1 << 16, 200, 15, 10_000, 2_000, 200, 1 << 13)
    return Config(leaves or 1_000_000, 500, 61, 10_000, 2_000, 400, 1 << 14)


@dataclass(frozen=True, slots=True)
class Samples:
    """Seconds per call, one per repetition, and the paired SHA-256 timings."""

    own: list[float]
    sha: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.own)

    @property
    def best(self) -> float:
        return min(self.own)

    def ratio(self, f: Callable[[float, float], float]) -> float:
        """Median over repetitions of ``f(seconds per call, seconds per SHA-256)``."""
        return statistics.median(f(o, s) for o, s in zip(self.own, self.sha, strict=True))


def _samples(run: Callable[[], int], reps: int, paired: Callable[[], int] | None = None) -> Samples:
    """Run ``run`` (which returns how many calls it made) ``reps`` times.

    With ``paired`` (the raw SHA-256 loop), each repetition of ``run`` comes
    right after one of ``paired``, so each ratio is taken between two timings
    made moments apart: on a shared machine the speed drifts between phases,
    and a ratio of two medians taken a minute apart would measure the drift.
    The collector is paused while timing so that no batch pays for a collection.
    """
    own: list[float] = []
    ref: list[float] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        run()  # warm-up
        for _ in range(reps):
            if paired is not None:
                t0 = _clock()
                calls = paired()
                ref.append((_clock() - t0) / calls)
            t0 = _clock()
            calls = run()
            own.append((_clock() - t0) / calls)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Samples(own, ref)


# --- raw limits --------------------------------------------------------------


def sha256_loop(calls: int) -> Callable[[], int]:
    """A loop of SHA-256 calls on a 65-byte input (0x01 ‖ left ‖ right), digest included."""
    data = b"\x01" + os.urandom(64)
    sha = hashlib.sha256
    rounds = range(calls)

    def run() -> int:
        for _ in rounds:
            sha(data).digest()
        return calls

    return run


def _threaded(
    pool: ThreadPoolExecutor, threads: int, work: Callable[[int], None], total: int
) -> Callable[[], int]:
    share = total // threads

    def run() -> int:
        futures = [pool.submit(work, share) for _ in range(threads)]
        for f in futures:
            f.result()
        return share * threads

    return run


def bench_ed25519(cfg: Config) -> dict[str, Samples]:
    """Seconds per Ed25519 sign and verify (wall time / operations), one and two threads."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = key.public_key()
    # About the size of a checkpoint note or a record envelope's signed part.
    message = os.urandom(200)
    signature = key.sign(message)

    def sign(n: int) -> None:
        for _ in range(n):
            key.sign(message)

    def verify(n: int) -> None:
        for _ in range(n):
            pub.verify(signature, message)

    out = {}
    reps = max(5, cfg.reps // 3)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for threads in (1, 2):
            for name, work in (("sign", sign), ("verify", verify)):
                run = _threaded(pool, threads, work, cfg.sign_batch)
                out[f"{name}_{threads}"] = _samples(run, reps)
    return out


# --- the Merkle core ---------------------------------------------------------


def build_store(leaves: int) -> merkle.MemoryHashStore:
    store = merkle.MemoryHashStore()
    leaf_hash = merkle.leaf_hash
    store.extend(leaf_hash(i.to_bytes(8, "big")) for i in range(leaves))
    return store


def inclusion_cases(rng: random.Random, leaves: int, count: int) -> list[tuple[int, int]]:
    """(index, size) pairs: sizes in the upper half of the tree, any index below."""
    out = []
    for _ in range(count):
        size = rng.randint(max(1, leaves // 2), leaves)
        out.append((rng.randrange(size), size))
    return out


def consistency_cases(rng: random.Random, leaves: int, count: int) -> list[tuple[int, int]]:
    """(old, new) pairs with 1 <= old < new, new in the upper half of the tree."""
    out = []
    for _ in range(count):
        new = rng.randint(max(2, leaves // 2), leaves)
        out.append((rng.randint(1, new - 1), new))
    return out


def consistency_hash_count(old: int, new: int, proof_len: int) -> int:
    """How many node hashes RFC 9162 §2.1.4.2 computes to check this proof.

    Independent of the library: the RFC's loop, counting instead of hashing.
    (For an inclusion proof the count is simply its length.)
    """
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    items = proof_len + (1 if old & (old - 1) == 0 else 0)
    count = 0
    for _ in range(items - 1):
        if fn & 1 or fn == sn:
            count += 2
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            count += 1
        fn >>= 1
        sn >>= 1
    return count


def _fresh(h: bytes) -> bytes:
    # A new object, as decoding a proof from the wire gives: a verifier never
    # holds the prover's objects, scattered over a heap of a million hashes.
    return bytes(bytearray(h))


def bench_proofs(
    cfg: Config, store: merkle.MemoryHashStore, rng: random.Random, pair: Callable[[], int]
) -> dict[str, Samples | float]:
    out: dict[str, Samples | float] = {}
    leaves = store.size
    inc = inclusion_cases(rng, leaves, cfg.cases)
    con = consistency_cases(rng, leaves, cfg.cases)
    prove_inclusion = merkle.prove_inclusion
    prove_consistency = merkle.prove_consistency

    def gen_inclusion() -> int:
        for index, size in inc:
            prove_inclusion(index, size, store)
        return len(inc)

    def gen_consistency() -> int:
        for old, new in con:
            prove_consistency(old, new, store)
        return len(con)

    out["prove_inclusion"] = _samples(gen_inclusion, cfg.reps, pair)
    out["prove_consistency"] = _samples(gen_consistency, cfg.reps, pair)

    # Everything a verifier is handed, prepared outside the timed loops.
    roots: dict[int, bytes] = {}

    def root(size: int) -> bytes:
        if size not in roots:
            roots[size] = merkle.tree_root(size, store)
        return _fresh(roots[size])

    def proof(hashes: list[bytes]) -> list[bytes]:
        return [_fresh(h) for h in hashes]

    inc_args = [
        (_fresh(store.levels[0][i]), i, n, proof(prove_inclusion(i, n, store)), root(n))
        for i, n in inc
    ]
    con_args = [(m, n, root(m), root(n), proof(prove_consistency(m, n, store))) for m, n in con]
    out["inclusion_hashes"] = statistics.mean(len(a[3]) for a in inc_args)
    out["consistency_hashes"] = statistics.mean(
        consistency_hash_count(m, n, len(p)) for m, n, _, _, p in con_args
    )
    out["consistency_proof_len"] = statistics.mean(len(a[4]) for a in con_args)
    verify_inclusion = merkle.verify_inclusion
    verify_consistency = merkle.verify_consistency
    # Every proof must verify before it is timed: a benchmark of a failing
    # verifier would time the exception path.
    for args in inc_args:
        verify_inclusion(*args)
    for cargs in con_args:
        verify_consistency(*cargs)

    def ver_inclusion() -> int:
        for lh, i, n, p, r in inc_args:
            verify_inclusion(lh, i, n, p, r)
        return len(inc_args)

    def ver_consistency() -> int:
        for m, n, r1, r2, p in con_args:
            verify_consistency(m, n, r1, r2, p)
        return len(con_args)

    out["verify_inclusion"] = _samples(ver_inclusion, cfg.reps, pair)
    out["verify_consistency"] = _samples(ver_consistency, cfg.reps, pair)
    return out


def bench_compact_range(cfg: Config, pair: Callable[[], int]) -> dict[str, Samples]:
    """Seconds per leaf absorbed by a CompactRange, one by one and batched.

    Each batch starts from an empty range and absorbs a power of two of leaves:
    ``append_batch - 1`` node hashes for ``append_batch`` leaves, the long-run
    average of one node hash per leaf.
    """
    hashes = [os.urandom(32) for _ in range(cfg.append_batch)]
    compact_range = merkle.CompactRange

    def one_by_one() -> int:
        cr = compact_range()
        append = cr.append
        for h in hashes:
            append(h)
        return len(hashes)

    def batched() -> int:
        cr = compact_range()
        cr.extend(hashes)
        return len(hashes)

    check = compact_range()
    check.extend(hashes)
    other = compact_range()
    for h in hashes:
        other.append(h)
    if check.root() != other.root():
        raise AssertionError("append and extend disagree")
    return {
        "append": _samples(one_by_one, cfg.reps, pair),
        "extend": _samples(batched, cfg.reps, pair),
    }


# --- report ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    value: str
    best: str
    ratio: str
    target: str
    ok: bool | None


def _table(rows: Sequence[Row]) -> str:
    head = ("figure", "median", "best", "vs raw limit (median)", "target", "")
    cells = [
        (
            r.figure,
            r.value,
            r.best,
            r.ratio,
            r.target,
            "" if r.ok is None else ("PASS" if r.ok else "MISS"),
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]

    def line(c: Sequence[str]) -> str:
        return "| " + " | ".join(s.ljust(w) for s, w in zip(c, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(c) for c in cells)])


def _limit_rows(sha: Samples, ed: dict[str, Samples]) -> list[Row]:
    rows = [
        Row(
            "SHA-256, 65-byte input",
            f"{sha.median * 1e6:.3f} µs/call",
            f"{sha.best * 1e6:.3f} µs",
            f"{1 / sha.median:,.0f} calls/s",
            "",
            None,
        )
    ]
    for op in ("sign", "verify"):
        for threads in (1, 2):
            s = ed[f"{op}_{threads}"]
            rows.append(
                Row(
                    f"Ed25519 {op}, {threads} thread{'s' if threads > 1 else ''}",
                    f"{s.median * 1e6:.1f} µs/op",
                    f"{s.best * 1e6:.1f} µs",
                    f"{1 / s.median:,.0f} ops/s",
                    "",
                    None,
                )
            )
    return rows


def _over_hashes(count: float) -> Callable[[float, float], float]:
    """Seconds per proof over the raw cost of the ``count`` hashes it needs."""

    def ratio(own: float, sha: float) -> float:
        return own / (count * sha)

    return ratio


def _merkle_rows(
    leaves: int, proofs: dict[str, Samples | float], compact: dict[str, Samples]
) -> list[Row]:
    rows = []
    for kind in ("inclusion", "consistency"):
        s = proofs[f"prove_{kind}"]
        assert isinstance(s, Samples)
        per = s.median * 1e6
        rows.append(
            Row(
                f"prove_{kind} @ {leaves:,} leaves",
                f"{per:.1f} µs",
                f"{s.best * 1e6:.1f} µs",
                f"{s.ratio(lambda o, h: o / h):.0f} SHA-256 calls",
                f"≤ {PROOF_TARGET_US:.0f} µs",
                per <= PROOF_TARGET_US,
            )
        )
    for kind in ("inclusion", "consistency"):
        s = proofs[f"verify_{kind}"]
        hashes = proofs[f"{kind}_hashes"]
        assert isinstance(s, Samples)
        assert isinstance(hashes, float)
        ratio = s.ratio(_over_hashes(hashes))
        rows.append(
            Row(
                f"verify_{kind} ({hashes:.1f} hashes)",
                f"{s.median * 1e6:.1f} µs",
                f"{s.best * 1e6:.1f} µs",
                f"{ratio:.2f}× the raw SHA-256 cost",
                f"≤ {VERIFY_TARGET_RATIO:.0f}×",
                ratio <= VERIFY_TARGET_RATIO,
            )
        )
    for kind, label in (("append", "one at a time"), ("extend", "batched")):
        s = compact[kind]
        ratio = s.ratio(lambda o, h: h / o)
        rows.append(
            Row(
                f"CompactRange.{kind} ({label})",
                f"{1 / s.median:,.0f} leaves/s",
                f"{1 / s.best:,.0f}/s",
                f"{ratio:.2f}× the SHA-256 rate",
                f"≥ {APPEND_TARGET_RATIO}×",
                ratio >= APPEND_TARGET_RATIO,
            )
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--leaves", type=int, default=None, help="tree size (default 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="small, fast run (65,536 leaves)")
    parser.add_argument("--seed", type=int, default=6962, help="seed for the random proofs")
    args = parser.parse_args(argv)
    cfg = _config(args.leaves, args.quick)
    if cfg.leaves < 2:
        parser.error("--leaves must be at least 2")
    rng = random.Random(args.seed)
    started = _clock()

    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__},"
        f" {platform.machine()}, {os.cpu_count()} CPUs"
    )
    print(f"leaves={cfg.leaves:,} cases={cfg.cases} reps={cfg.reps} seed={args.seed}")
    print()

    sha = _samples(sha256_loop(cfg.sha_batch), cfg.reps)
    ed = bench_ed25519(cfg)
    print("Raw limits (this run)")
    print(_table(_limit_rows(sha, ed)))
    print()

    t0 = _clock()
    store = build_store(cfg.leaves)
    print(f"filled a MemoryHashStore with {cfg.leaves:,} leaf hashes in {_clock() - t0:.1f} s")
    pair = sha256_loop(cfg.pair_batch)
    proofs = bench_proofs(cfg, store, rng, pair)
    del store
    compact = bench_compact_range(cfg, pair)
    rows = _merkle_rows(cfg.leaves, proofs, compact)
    print()
    print("Merkle core")
    print(_table(rows))
    print()
    print(f"mean consistency proof length: {proofs['consistency_proof_len']:.1f} hashes")
    missed = [r.figure for r in rows if r.ok is False]
    print(f"{len(rows) - len(missed)}/{len(rows)} targets met; total {_clock() - started:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
