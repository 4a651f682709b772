"""Events, their canonical encoding, and the signed record envelope.

This module owns what one record says and the exact bytes it is stored as: the
event schema (a closed set of actions, actor kinds and legal bases) declared as
msgspec Structs, whose decoders validate every field in C while they read it
and name the offending one by its path (``$.actor.kind``); the JSON form the
CLI reads and writes; the canonical MessagePack encoding that is signed; and
the envelope around it (version, sequence number, chain link, log time, writer
key ID, event, Ed25519 signature) whose exact bytes are the Merkle leaf. It
does no I/O and reads no clock: log times are passed in.

Envelope (all integers big-endian)::

    offset 0      1 byte    version, 0x02
    offset 1      8 bytes   seq, uint64: the record's index in the ledger
    offset 9      32 bytes  prev: chain hash of the previous record (zeros for seq 0)
    offset 41     8 bytes   logged_at, int64 microseconds since the Unix epoch (UTC),
                            from 0 to MAX_LOGGED_AT (the end of 9999)
    offset 49     4 bytes   writer key ID, uint32 (the signed-note key ID, type 0x01)
    offset 53     4 bytes   L, uint32: length of the event encoding, <= MAX_EVENT_SIZE
    offset 57     L bytes   the canonical event encoding (see encode_event)
    offset 57+L   64 bytes  Ed25519 signature

The first 57+L bytes are the *signed content*. The next record's ``prev`` is
``SHA-256("disclosure-ledger/chain/v1\\n" ‖ content)``; the signature covers
``"disclosure-ledger/record/v1\\n" ‖ origin ‖ "\\n" ‖ content``, which separates
it from every other signature the library makes and binds it to one ledger.
Nothing may follow the signature. A later format gets a new version byte; a
reader refuses versions it does not know (version 1 encoded times as strings).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Signer, Verifier
from disclosure_ledger._core.schema import (
    _BAD_OTHER,
    _JSON_DECODER,
    _JSON_ENCODER,
    _ORDINARY_BUT_COLON,
    _STRICT_JSON_DECODER,
    _STRICT_MSGPACK_DECODER,
    MAX_EVENT_SIZE,
    MAX_EXTENSION_DEPTH,
    Action,
    ActorKind,
    Clip,
    Digest,
    Event,
    Extensions,
    JSONValue,
    LegalBasis,
    Party,
    _check_extensions,
    _check_strings,
    _clear,
    _encode,
    _json_dec_hook,
    _size_checked,
    _validation_error,
    check_party,
    decode_event,
    encode_event,
    format_time,
    parse_time,
    refuse_ext,
    timestamp_micros,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    KeyFormatError,
    MalformedError,
    UntrustedKeyError,
    ValidationError,
)

__all__ = [
    "CHAIN_PREFIX",
    "ENVELOPE_VERSION",
    "GENESIS_PREV",
    "HANDOVER_ACTIONS",
    "HEADER",
    "HEADER_SIZE",
    "MAX_EVENT_SIZE",
    "MAX_EXTENSION_DEPTH",
    "MAX_LOGGED_AT",
    "RECORD_SIG_PREFIX",
    "SIGNATURE_SIZE",
    "AccessClass",
    "Action",
    "ActorKind",
    "Clip",
    "Digest",
    "Envelope",
    "Event",
    "Extensions",
    "JSONValue",
    "LegalBasis",
    "Party",
    "chain_hash",
    "check_party",
    "decode_event",
    "encode_content",
    "encode_event",
    "event_and_encoding",
    "event_from_json",
    "event_from_json_text",
    "event_to_json",
    "format_time",
    "is_disclosure",
    "is_without_consent",
    "make_envelope",
    "parse_envelope",
    "parse_json_line",
    "parse_time",
    "receiving_party",
    "refuse_ext",
    "sign_content",
    "signing_message",
    "timestamp_micros",
    "unpack_header",
    "verify_envelope",
]

ENVELOPE_VERSION = 2
HEADER_SIZE = 57
SIGNATURE_SIZE = 64
GENESIS_PREV = bytes(32)
"""The ``prev`` of record 0."""
MAX_LOGGED_AT = 253_402_300_799_999_999
"""The last microsecond of 9999 (UTC): later log times have no RFC 3339 form."""
CHAIN_PREFIX = b"disclosure-ledger/chain/v1\n"
RECORD_SIG_PREFIX = b"disclosure-ledger/record/v1\n"

HEADER = struct.Struct(">BQ32sqII")
"""The envelope header before the event: version, seq, prev, logged_at, key ID, L."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAD_ORIGIN = re.compile(f"[\x00-\x1f{_BAD_OTHER}\ud800-\udfff]")

HANDOVER_ACTIONS = frozenset(
    {Action.VIEW, Action.STREAM, Action.DOWNLOAD, Action.SHARE, Action.RELEASE, Action.EXPORT}
)
"""Actions that put footage in front of someone: seeing it live or recorded, or receiving a copy.

The release gate opens only for a record whose action is one of these and
which is a disclosure (:func:`is_disclosure`). ``clip``, ``redact``,
``delete`` and ``retention_change`` change or remove footage; when someone
other than the owner does them they still reach the owner's report, as an
access (:func:`access_class`), but they never open the gate."""


class AccessClass(enum.StrEnum):
    """Who, other than the owner, an access reached; the report's sections, in its order.

    ``outside``: law enforcement, a third party, or any recipient other than
    the owner. Every such access is a *disclosure*, whatever the action: a
    live stream watched by the police discloses footage as a download does.
    ``vendor_staff``: the vendor's employees and contractors, with no outside
    recipient. ``vendor_system``: the vendor's automated systems, likewise.
    """

    OUTSIDE = "outside"
    VENDOR_STAFF = "vendor_staff"
    VENDOR_SYSTEM = "vendor_system"


_OUTSIDE_KINDS = frozenset({ActorKind.LAW_ENFORCEMENT, ActorKind.THIRD_PARTY})

# ---------------------------------------------------------------------------
# JSON form.


def _json_bytes(text: object) -> bytes:
    if isinstance(text, bytes | bytearray | memoryview):
        raw = bytes(text)
    elif isinstance(text, str):
        if len(text) > MAX_EVENT_SIZE:
            raise ValidationError("<json>", f"is larger than {MAX_EVENT_SIZE} bytes")
        try:
            raw = str.__str__(text).encode("utf-8")
        except UnicodeEncodeError as err:
            raise ValidationError("<json>", "is not valid UTF-8 (a lone surrogate)") from err
    else:
        raise ValidationError("<json>", f"must be str or bytes, not {type(text).__name__}")
    if len(raw) > MAX_EVENT_SIZE:
        raise ValidationError("<json>", f"is larger than {MAX_EVENT_SIZE} bytes")
    return raw


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValidationError("<json>", f"duplicate key {key!r} in an object")
            seen.add(key)
    return out


def _refuse_duplicate_keys(raw: bytes) -> None:
    # msgspec, like most JSON decoders, keeps the last of two equal keys; the
    # ledger refuses such input, since two readers could take different values.
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValidationError:
        raise
    except ValueError as err:  # msgspec read it, so this cannot happen
        raise ValidationError("<json>", f"is not valid JSON: {err}") from err


# Why equal colon counts prove that there is no duplicate key, in a JSON text
# without escapes: every colon of a JSON text is either after a key or inside
# a string. The strings the event kept are in the text as they are in the
# event's own JSON encoding, except times, which that encoding writes in UTC
# with two colons, the fewest any RFC 3339 time has. So the encoding has no
# more colons than the text, and exactly as many only when no key was dropped
# (a duplicate, or an explicit null or empty list, which the exact check then
# accepts).


def parse_json_line(text: str | bytes) -> tuple[Event, bytes]:
    """Parse one JSON object (one JSON Lines line) into an event and its canonical encoding.

    This is the append path's reader: :func:`event_from_json_text`, also
    returning :func:`encode_event`'s bytes without checking the event a
    second time.

    Raises:
        ValidationError: as :func:`event_from_json_text`.
    """
    raw = text if type(text) is bytes and len(text) <= MAX_EVENT_SIZE else _json_bytes(text)
    try:
        event: Event = _JSON_DECODER.decode(raw)
    except msgspec.ValidationError as err:
        raise _validation_error(err) from None
    except msgspec.DecodeError as err:
        raise ValidationError("<json>", f"is not valid JSON: {err}") from None
    except RecursionError:
        raise ValidationError("<json>", "nests too deeply to be an event") from None
    # One pass over the text finds its colons and anything _clear looks for.
    left = raw.translate(None, _ORDINARY_BUT_COLON)
    colons = left.count(b":")
    left = left.replace(b":", b"") if colons != len(left) else b""
    suspect = _check_strings(event, _clear(raw, left, event), _STRICT_JSON_DECODER, raw)
    if event.extensions:
        _check_extensions(event.extensions, chars=suspect)
    # Without escapes (a \u escape can spell a colon), equal colon counts
    # prove that no key was dropped (see the note above).
    if (b"\\" in left and b"\\u" in raw) or colons != _JSON_ENCODER.encode(event).count(b":"):
        _refuse_duplicate_keys(raw)
    return event, _size_checked(_encode(event))


def event_from_json_text(text: str | bytes) -> Event:
    """Parse one JSON object (one JSON Lines line) into an event.

    Bytes must be UTF-8. The text may be at most :data:`MAX_EVENT_SIZE` bytes;
    duplicate keys, lone surrogates and the non-standard constants NaN and
    Infinity are refused.

    Raises:
        ValidationError: with field ``<json>`` if the text is too large, not
            UTF-8, not valid JSON or has a duplicate key; otherwise as
            :func:`event_from_json`.
    """
    return parse_json_line(text)[0]


def event_from_json(obj: object) -> Event:
    """Build an event from its JSON form (a parsed JSON object).

    The object has exactly the :class:`Event` field names. Times are RFC 3339
    strings with a zone (see :func:`parse_time`), hashes 64 lowercase hex
    digits, enums their string values, ``actor`` and ``recipient`` objects
    ``{kind, id, organization}``, ``footage`` a list of objects ``{clip_id,
    sha256, start, end}``, ``extensions`` an object of JSON values without
    floats. ``null`` for an optional single value counts as absent.

    Raises:
        ValidationError: naming the path of the field (such as
            ``$.footage[1].sha256``) that is unknown, missing, of the wrong
            type or invalid; ``$`` if the encoding would exceed
            :data:`MAX_EVENT_SIZE`.
    """
    return event_and_encoding(obj)[0]


def event_and_encoding(obj: object) -> tuple[Event, bytes]:
    """An :class:`Event` (checked by :func:`encode_event`) or its JSON form, with its encoding.

    What the ledger's append methods accept.

    Raises:
        ValidationError: as :func:`event_from_json` and :func:`encode_event`.
    """
    if isinstance(obj, Event):
        return obj, encode_event(obj)
    if not isinstance(obj, Mapping):
        raise ValidationError("$", f"expected an object, not {type(obj).__name__}")
    try:
        event: Event = msgspec.convert(obj, Event, dec_hook=_json_dec_hook)
    except msgspec.ValidationError as err:
        raise _validation_error(err) from None
    clear = _clear(_JSON_ENCODER.encode(event), None, event)
    if event.extensions:
        _check_extensions(event.extensions, chars=not clear)
    data = _size_checked(_encode(event))
    _check_strings(event, clear, _STRICT_MSGPACK_DECODER, data)
    return event, data


def _party_json(party: Party) -> dict[str, object]:
    out: dict[str, object] = {"kind": str(party.kind)}
    if party.id is not None:
        out["id"] = party.id
    if party.organization is not None:
        out["organization"] = party.organization
    return out


def event_to_json(event: Event) -> dict[str, object]:
    """Return the JSON form of ``event`` (a fresh dict; :func:`event_from_json` reverses it).

    Absent fields are omitted; times are ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``,
    hashes 64 lowercase hex digits.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    if not isinstance(event, Event):
        raise MalformedError(f"expected an Event, not {type(event).__name__}")
    out: dict[str, object] = {
        "event_id": event.event_id,
        "occurred_at": format_time(event.occurred_at),
        "camera_id": event.camera_id,
        "action": str(event.action),
        "actor": _party_json(event.actor),
    }
    if event.owner_id is not None:
        out["owner_id"] = event.owner_id
    if event.footage:
        out["footage"] = [
            {
                "clip_id": c.clip_id,
                "sha256": c.sha256.hex(),
                "start": format_time(c.start),
                "end": format_time(c.end),
            }
            for c in event.footage
        ]
    if event.recipient is not None:
        out["recipient"] = _party_json(event.recipient)
    if event.legal_basis is not None:
        out["legal_basis"] = str(event.legal_basis)
    if event.legal_reference is not None:
        out["legal_reference"] = event.legal_reference
    if event.justification is not None:
        out["justification"] = event.justification
    if event.consent is not None:
        out["consent"] = event.consent
    if event.owner_notified_at is not None:
        out["owner_notified_at"] = format_time(event.owner_notified_at)
    if event.notification_deferred_until is not None:
        out["notification_deferred_until"] = format_time(event.notification_deferred_until)
    if event.purpose is not None:
        out["purpose"] = event.purpose
    if event.derived_from is not None:
        out["derived_from"] = event.derived_from.hex()
    if event.extensions:
        out["extensions"] = msgspec.json.decode(_JSON_ENCODER.encode(event.extensions))
    return out


# ---------------------------------------------------------------------------
# Classification.


def access_class(event: Event) -> AccessClass | None:
    """Return who, other than the owner, ``event`` reached; ``None`` for the owner's own access.

    This is the one definition of a disclosure: the owner's report and the
    release gate both call it, so they cannot disagree. In order:

    - :attr:`AccessClass.OUTSIDE` when the actor is law enforcement or a third
      party, or there is a recipient who is not the owner;
    - :attr:`AccessClass.VENDOR_STAFF` when the actor is a vendor employee;
    - :attr:`AccessClass.VENDOR_SYSTEM` when the actor is a vendor system;
    - ``None`` when the owner acted, for themselves (no recipient, or the owner).

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    if not isinstance(event, Event):
        raise MalformedError(f"expected an Event, not {type(event).__name__}")
    actor = event.actor.kind
    recipient = event.recipient
    if actor in _OUTSIDE_KINDS or (recipient is not None and recipient.kind is not ActorKind.OWNER):
        return AccessClass.OUTSIDE
    if actor is ActorKind.VENDOR_EMPLOYEE:
        return AccessClass.VENDOR_STAFF
    if actor is ActorKind.VENDOR_SYSTEM:
        return AccessClass.VENDOR_SYSTEM
    return None


def receiving_party(event: Event) -> Party:
    """Who an access puts the footage in front of: the recipient, else the actor itself.

    The release gate compares this with the party about to receive footage.

    Raises:
        Nothing: it reads two fields of a validated event.
    """
    return event.recipient if event.recipient is not None else event.actor


def is_disclosure(event: Event) -> bool:
    """Return whether ``event`` made footage reach someone outside: owner and vendor both.

    That is :func:`access_class` being :attr:`AccessClass.OUTSIDE`, whatever
    the action.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    return access_class(event) is AccessClass.OUTSIDE


def is_without_consent(event: Event) -> bool:
    """Return whether ``event`` is a disclosure the owner did not consent to.

    A disclosure the owner made themselves (the actor is the owner) is
    consented unless ``consent`` is false. Any other disclosure is without
    consent when ``consent`` is false, when its legal basis is other than
    ``owner_consent``, or when it has no legal basis and no ``consent: true``.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    if not is_disclosure(event):
        return False
    if event.consent is False:
        return True
    if event.actor.kind is ActorKind.OWNER:
        return False
    if event.legal_basis is None:
        return event.consent is not True
    return event.legal_basis is not LegalBasis.OWNER_CONSENT


# ---------------------------------------------------------------------------
# Envelope.


def chain_hash(content: bytes) -> bytes:
    """Return ``SHA-256("disclosure-ledger/chain/v1\\n" ‖ content)``: the next record's prev.

    Raises:
        TypeError: if ``content`` is not bytes-like (nothing else can fail).
    """
    return hashlib.sha256(CHAIN_PREFIX + content).digest()


def encode_content(seq: int, prev: bytes, logged_at: int, key_id: int, event_bytes: bytes) -> bytes:
    """Return the signed content: the 57-byte header followed by ``event_bytes``.

    ``logged_at`` is in microseconds since the Unix epoch (see
    :func:`timestamp_micros`). The event bytes are not decoded here.

    Raises:
        MalformedError: if a number is out of range, ``prev`` is not 32 bytes
            or ``event_bytes`` is larger than :data:`MAX_EVENT_SIZE`.
    """
    if not isinstance(prev, bytes) or len(prev) != 32:
        raise MalformedError("prev must be 32 bytes")
    if not isinstance(event_bytes, bytes):
        raise MalformedError("event bytes must be bytes")
    if len(event_bytes) > MAX_EVENT_SIZE:
        raise MalformedError(f"event encoding is larger than {MAX_EVENT_SIZE} bytes")
    if not isinstance(logged_at, int) or not 0 <= logged_at <= MAX_LOGGED_AT:
        raise MalformedError("logged_at must be microseconds from 1970 to the end of 9999")
    try:
        header = HEADER.pack(ENVELOPE_VERSION, seq, prev, logged_at, key_id, len(event_bytes))
    except struct.error as err:
        raise MalformedError(f"envelope field out of range: {err}") from err
    return header + event_bytes


def _check_origin(origin: str) -> bytes:
    if not isinstance(origin, str) or not origin:
        raise MalformedError("origin must be a non-empty string")
    if _BAD_ORIGIN.search(origin):
        raise MalformedError("origin must not contain control characters")
    return origin.encode("utf-8")


@functools.lru_cache(maxsize=64)
def _signing_prefix(origin: str) -> bytes:
    # A ledger signs and verifies every record under the same origin. Only
    # plain strs are cached (a str subclass might not hash as its value), and
    # a refused origin raises, which is not cached.
    return RECORD_SIG_PREFIX + _check_origin(origin) + b"\n"


def signing_message(origin: str, content: bytes) -> bytes:
    """Return what a record signature covers: ``RECORD_SIG_PREFIX ‖ origin ‖ "\\n" ‖ content``.

    Raises:
        MalformedError: if ``origin`` is empty or has control characters.
    """
    if type(origin) is str:
        return _signing_prefix(origin) + content
    return RECORD_SIG_PREFIX + _check_origin(origin) + b"\n" + content


def sign_content(origin: str, content: bytes, signer: Signer) -> bytes:
    """Return the writer's 64-byte Ed25519 signature of ``content`` in the ledger ``origin``.

    Raises:
        MalformedError: if ``origin`` is not acceptable.
        KeyFormatError: if ``signer`` is not a plain Ed25519 (type 0x01) key.
    """
    if signer.key_type != KEY_TYPE_ED25519:
        raise KeyFormatError("record writer keys must be Ed25519 note keys (type 0x01)")
    return signer.sign_raw(signing_message(origin, content))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A record as stored: the header fields, the event encoding and the signature.

    ``logged_at`` is microseconds since the Unix epoch. Construction checks
    every field's range and length; it does not decode the event or check the
    signature (see :meth:`event` and :func:`verify_envelope`).
    """

    version: int
    seq: int
    prev: bytes
    logged_at: int
    key_id: int
    event_bytes: bytes
    signature: bytes
    _content: bytes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        """Check the fields and compute the signed content.

        Raises:
            MalformedError: if a field is out of range or has the wrong length.
        """
        if self.version != ENVELOPE_VERSION:
            raise MalformedError(f"unsupported envelope version {self.version}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise MalformedError("signature must be 64 bytes")
        content = encode_content(self.seq, self.prev, self.logged_at, self.key_id, self.event_bytes)
        object.__setattr__(self, "_content", content)

    @property
    def content(self) -> bytes:
        """The signed content: header and event encoding."""
        return self._content

    @property
    def leaf(self) -> bytes:
        """The envelope's exact bytes, the Merkle leaf."""
        return self._content + self.signature

    @property
    def chain_hash(self) -> bytes:
        """The hash the next record's ``prev`` must hold."""
        return chain_hash(self._content)

    @property
    def logged_at_time(self) -> datetime:
        """``logged_at`` as a UTC datetime."""
        return _EPOCH + timedelta(microseconds=self.logged_at)

    def event(self) -> Event:
        """Decode the event.

        Raises:
            MalformedError: as :func:`decode_event`.
        """
        return decode_event(self.event_bytes)


def make_envelope(  # noqa: PLR0917  # positional, in the envelope's field order
    origin: str, signer: Signer, seq: int, prev: bytes, logged_at: int, event_bytes: bytes
) -> Envelope:
    """Build and sign one envelope (the ledger signs batches itself; this is for one).

    Raises:
        MalformedError: if a field is out of range or ``origin`` is not acceptable.
        KeyFormatError: if ``signer`` is not a type 0x01 key.
    """
    content = encode_content(seq, prev, logged_at, signer.key_id, event_bytes)
    signature = sign_content(origin, content, signer)
    return Envelope(ENVELOPE_VERSION, seq, prev, logged_at, signer.key_id, event_bytes, signature)


def unpack_header(leaf: bytes) -> tuple[int, int, bytes, int, int, int]:
    """Check an envelope's framing and return its header fields.

    This is the one place the header is checked: the ledger's check, the
    owner's verifier and :func:`parse_envelope` all call it. It returns
    ``(version, seq, prev, logged_at, key_id, event_length)``; the event and
    the signature are not looked at.

    Raises:
        MalformedError: if the length is not exactly 57 + L + 64, the version
            is not :data:`ENVELOPE_VERSION`, L exceeds :data:`MAX_EVENT_SIZE`
            or logged_at is outside 1970 to the end of 9999.
    """
    if len(leaf) < HEADER_SIZE + SIGNATURE_SIZE:
        raise MalformedError("envelope is too short")
    header = HEADER.unpack_from(leaf)
    version, _seq, _prev, logged_at, _key, length = header
    if version != ENVELOPE_VERSION:
        raise MalformedError(f"unsupported envelope version {version}")
    if length > MAX_EVENT_SIZE:
        raise MalformedError(f"event encoding is larger than {MAX_EVENT_SIZE} bytes")
    if len(leaf) != HEADER_SIZE + length + SIGNATURE_SIZE:
        raise MalformedError("envelope length does not match its event length")
    if not 0 <= logged_at <= MAX_LOGGED_AT:
        raise MalformedError("envelope logged_at is outside 1970 to the end of 9999")
    return header


def parse_envelope(leaf: bytes) -> Envelope:
    """Parse an envelope's exact bytes (see the module docstring for the layout).

    The event encoding is not decoded and the signature is not checked.

    Raises:
        MalformedError: if the length is not exactly 57 + L + 64, the version
            is not :data:`ENVELOPE_VERSION`, L exceeds :data:`MAX_EVENT_SIZE`
            or logged_at is outside 1970 to the end of 9999.
    """
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise MalformedError(f"envelope must be bytes, not {type(leaf).__name__}")
    leaf = bytes(leaf)
    version, seq, prev, logged_at, key, length = unpack_header(leaf)
    end = HEADER_SIZE + length
    return Envelope(version, seq, prev, logged_at, key, leaf[HEADER_SIZE:end], leaf[end:])


def verify_envelope(origin: str, envelope: Envelope, writers: Iterable[Verifier]) -> Verifier:
    """Check the writer's signature on ``envelope`` in the ledger ``origin``.

    Only type 0x01 keys in ``writers`` whose key ID matches are tried; trust
    comes from ``writers``, never from the envelope.

    Returns the writer whose key verified the signature.

    Raises:
        MalformedError: if ``origin`` is not acceptable.
        UntrustedKeyError: if no trusted writer has the envelope's key ID.
        BadSignatureError: if the signature verifies under none of them.
    """
    candidates = [
        w for w in writers if w.key_type == KEY_TYPE_ED25519 and w.key_id == envelope.key_id
    ]
    if not candidates:
        raise UntrustedKeyError(
            f"record {envelope.seq} is signed by key {envelope.key_id:08x}, not a trusted writer",
            index=envelope.seq,
        )
    message = signing_message(origin, envelope.content)
    for writer in candidates:
        if writer.verifies(envelope.signature, message):
            return writer
    raise BadSignatureError(
        f"record {envelope.seq}: signature by {candidates[0].name} does not verify",
        index=envelope.seq,
    )
