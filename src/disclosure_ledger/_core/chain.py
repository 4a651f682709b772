"""The chain walker: the one check of a run of records, in order.

This module owns what every reader of a ledger checks record by record,
before it trusts a record's content: the envelope's framing (through
:func:`records.unpack_header`, the one header check), the writer's signature
by a trusted key, the sequence number and the chain link to the record
before. The ledger's own check, the owner's verifier (one walker per chunk,
on its thread pool) and the anchor record of a range bundle all walk records
with it, so one fault gets one error and one message wherever it is found.

Trust comes from the caller's :class:`WriterKeys`, never from the records.
Errors carry the record's index in ``index`` and start their message with
``record N:``; a header fault is a :class:`~.errors.MalformedRecordError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from disclosure_ledger._core import records
from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Verifier
from disclosure_ledger.errors import (
    BadSignatureError,
    ChainBreakError,
    MalformedError,
    MalformedRecordError,
    UntrustedKeyError,
)

__all__ = ["ChainWalker", "Step", "WriterKeys"]

Step = tuple[int, int, str]
"""What :meth:`ChainWalker.step` returns: ``(logged_at, content_end, writer_name)``.

``content_end`` is where the signed content ends (57 + the event's length),
so the event's encoding is ``leaf[57:content_end]``."""


class WriterKeys:
    """The writer keys a reader trusts, by key ID, parsed once for verifying many records.

    ``hints`` maps key IDs to names the records' source suggests (a bundle's
    key hints): they only make the refusal of an unknown key more helpful,
    they never make a key trusted. ``untrusted_as`` says, in the refusal,
    what the key is not ("a trusted writer", "a given writer key").
    """

    __slots__ = ("_by_id", "_hints", "_untrusted_as")

    def __init__(
        self,
        writers: Sequence[Verifier],
        *,
        hints: Mapping[int, str] | None = None,
        untrusted_as: str = "a trusted writer",
    ) -> None:
        """Index ``writers`` by key ID.

        Raises:
            MalformedError: if a writer key is not an Ed25519 (type 0x01) note key.
        """
        by_id: dict[int, list[tuple[Ed25519PublicKey, str]]] = {}
        for w in writers:
            if w.key_type != KEY_TYPE_ED25519:
                raise MalformedError(f"writer key {w.name} is not an Ed25519 note key")
            public = Ed25519PublicKey.from_public_bytes(w.public_key)
            by_id.setdefault(w.key_id, []).append((public, w.name))
        self._by_id = {k: tuple(v) for k, v in by_id.items()}
        self._hints = dict(hints or {})
        self._untrusted_as = untrusted_as

    def signer(self, index: int, key_id: int, message: bytes, signature: bytes) -> str:
        """Return the name of the trusted writer whose key verifies ``signature`` on ``message``.

        Raises:
            UntrustedKeyError: if no trusted writer has ``key_id``.
            BadSignatureError: if the signature verifies under none of them.
        """
        keys = self._by_id.get(key_id)
        if keys is None:
            hint = self._hints.get(key_id)
            named = f" (the file's hint names it {hint})" if hint else ""
            raise UntrustedKeyError(
                f"record {index}: signed by key {key_id:08x}{named}, not {self._untrusted_as}",
                index=index,
            )
        for public, name in keys:
            try:
                public.verify(signature, message)
            except InvalidSignature:
                continue
            return name
        raise BadSignatureError(
            f"record {index}: the signature by {keys[0][1]} does not verify", index=index
        )


class ChainWalker:
    """Checks records ``start, start + 1, ...`` of the ledger ``origin``, one :meth:`step` each.

    ``prev`` is the chain hash the first record must carry (``GENESIS_PREV``
    for record 0), or ``None`` when the first record's link cannot be checked
    here (the anchor of a range bundle, proven by an inclusion proof instead).
    After each step, :attr:`prev` holds the hash the next record must carry.
    """

    __slots__ = ("_check_link", "_keys", "_prefix", "next_index", "prev")

    def __init__(
        self, origin: str, keys: WriterKeys, *, start: int = 0, prev: bytes | None
    ) -> None:
        """Start a walk at record ``start``.

        Raises:
            MalformedError: if ``origin`` is empty or has control characters.
        """
        self._prefix = records.signing_message(origin, b"")
        self._keys = keys
        self.next_index = start
        self._check_link = prev is not None
        self.prev = records.GENESIS_PREV if prev is None else prev

    def step(self, leaf: bytes) -> Step:
        """Check the next record's framing, signature, sequence number and chain link.

        The signature is checked before the sequence number and the link, so
        a record that someone moved or renumbered is reported for what was
        done to it only when its own signature still holds.

        Raises:
            MalformedRecordError: if the envelope is not well-formed.
            UntrustedKeyError: if its key is not a trusted writer's.
            BadSignatureError: if its signature does not verify.
            ChainBreakError: if its sequence number or its link is wrong.
        """
        index = self.next_index
        try:
            _version, seq, link, logged_at, key_id, elen = records.unpack_header(leaf)
        except MalformedError as err:
            raise MalformedRecordError(f"record {index}: {err}", index=index) from err
        end = records.HEADER_SIZE + elen
        content = leaf[:end]
        signer = self._keys.signer(index, key_id, self._prefix + content, leaf[end:])
        if seq != index:
            raise ChainBreakError(
                f"record {index}: carries sequence number {seq}: records are missing,"
                " duplicated or out of order",
                index=index,
            )
        if self._check_link and link != self.prev:
            raise ChainBreakError(
                f"record {index}: does not link to record {index - 1}", index=index
            )
        self._check_link = True
        self.prev = records.chain_hash(content)
        self.next_index = index + 1
        return logged_at, end, signer
