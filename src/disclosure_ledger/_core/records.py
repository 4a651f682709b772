"""Events, their canonical encoding, and the signed record envelope.

This module owns what one record says and the exact bytes it is stored as: the
event schema (a closed set of actions, actor kinds and legal bases), strict
validation that names the offending field, the JSON form the CLI reads and
writes, the canonical msgpack encoding that is signed, and the envelope around
it (version, sequence number, chain link, log time, writer key ID, event,
Ed25519 signature) whose exact bytes are the Merkle leaf. It does no I/O and
reads no clock: log times are passed in.

Envelope (all integers big-endian)::

    offset 0      1 byte    version, 0x01
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
reader refuses versions it does not know.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import re
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias, TypeVar, cast

import msgpack

from disclosure_ledger._core.notes import KEY_TYPE_ED25519, Signer, Verifier
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
    "Envelope",
    "Event",
    "FrozenMap",
    "JSONValue",
    "LegalBasis",
    "Party",
    "chain_hash",
    "decode_event",
    "encode_content",
    "encode_event",
    "event_from_json",
    "event_from_json_text",
    "event_to_json",
    "format_time",
    "is_disclosure",
    "is_without_consent",
    "make_envelope",
    "parse_envelope",
    "parse_time",
    "receiving_party",
    "refuse_ext",
    "sign_content",
    "signing_message",
    "timestamp_micros",
    "unpack_header",
    "verify_envelope",
]

MAX_EVENT_SIZE = 64 * 1024
"""The largest canonical event encoding (and JSON text) accepted, in bytes."""
MAX_EXTENSION_DEPTH = 16
"""How deeply lists and maps may nest inside ``extensions`` (the top map is level 1)."""
ENVELOPE_VERSION = 1
HEADER_SIZE = 57
SIGNATURE_SIZE = 64
GENESIS_PREV = bytes(32)
MAX_LOGGED_AT = 253_402_300_799_999_999
"""The last microsecond of 9999 (UTC): later log times have no RFC 3339 form."""
"""The ``prev`` of record 0."""
CHAIN_PREFIX = b"disclosure-ledger/chain/v1\n"
RECORD_SIG_PREFIX = b"disclosure-ledger/record/v1\n"

HEADER = struct.Struct(">BQ32sqII")
"""The envelope header before the event: version, seq, prev, logged_at, key ID, L."""
_MAX_INT64 = (1 << 63) - 1
_MIN_INT64 = -(1 << 63)
_MAX_ID = 256
_MAX_TEXT = 8192
_MAX_OTHER = 1024
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_E = TypeVar("_E", bound=enum.StrEnum)
_ONE_MICROSECOND = timedelta(microseconds=1)


class Action(enum.StrEnum):
    """What was done to the footage. A closed set; the value is the wire string.

    ``view``, ``stream``, ``download``, ``share``, ``release``, ``clip``,
    ``redact``, ``delete``, ``retention_change``, ``export``.
    """

    VIEW = "view"
    STREAM = "stream"
    DOWNLOAD = "download"
    SHARE = "share"
    RELEASE = "release"
    CLIP = "clip"
    REDACT = "redact"
    DELETE = "delete"
    RETENTION_CHANGE = "retention_change"
    EXPORT = "export"


class ActorKind(enum.StrEnum):
    """Who a party is: ``owner``, ``vendor_employee``, ``vendor_system``,
    ``law_enforcement`` or ``third_party``.
    """

    OWNER = "owner"
    VENDOR_EMPLOYEE = "vendor_employee"
    VENDOR_SYSTEM = "vendor_system"
    LAW_ENFORCEMENT = "law_enforcement"
    THIRD_PARTY = "third_party"


class LegalBasis(enum.StrEnum):
    """The basis an access claims: ``owner_consent``, ``warrant``, ``court_order``,
    ``subpoena``, ``emergency`` or ``none``.
    """

    OWNER_CONSENT = "owner_consent"
    WARRANT = "warrant"
    COURT_ORDER = "court_order"
    SUBPOENA = "subpoena"
    EMERGENCY = "emergency"
    NONE = "none"


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

_ACTIONS = {m.value: m for m in Action}
_ACTOR_KINDS = {m.value: m for m in ActorKind}
_LEGAL_BASES = {m.value: m for m in LegalBasis}

JSONValue: TypeAlias = "str | int | bool | Sequence[JSONValue] | Mapping[str, JSONValue] | None"
"""A value allowed in ``extensions``: no floats, integers within int64."""

# Control characters (C0, DEL, C1), lone surrogates (not encodable as UTF-8),
# line/paragraph separators and bidirectional controls: all of them can make a
# field display as something it is not in the owner's list of disclosures.
_BAD_OTHER = "\x7f-\x9f\ud800-\udfff\u2028\u2029\u202a-\u202e\u2066-\u2069"
_BAD_CHARS = re.compile(f"[\x00-\x1f{_BAD_OTHER}]")
# Free text (justification, extension strings) may also hold newlines and tabs.
_BAD_TEXT_CHARS = re.compile(f"[\x00-\x08\x0b-\x1f{_BAD_OTHER}]")
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,256}")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
# [0-9], not \d: \d also matches non-ASCII digits.
_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:Z|[+-][0-9]{2}:([0-9]{2}))"
)
_NAIVE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?")
# What format_time writes (a subset of _TIME): no zero fraction, and hours
# only to 23, in case fromisoformat some day reads 24:00 as the next midnight.
_CANONICAL_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}(?:\.(?!0{6})[0-9]{6})?Z"
)


# ---------------------------------------------------------------------------
# Field checks. Each raises ValidationError naming ``name``.


def _check_str(value: object, name: str, max_len: int, *, text: bool = False) -> str:
    # Returns ``value`` itself when it is a plain str, so callers can tell
    # whether anything changed.
    if type(value) is str and 0 < len(value) <= max_len and value.isascii() and value.isprintable():
        # The common case, without the regex: printable ASCII is exactly
        # U+0020 to U+007E, none of which either pattern refuses.
        return value
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, not {type(value).__name__}")
    # Check exactly what will be stored: a str subclass may override __str__,
    # so take its real contents first.
    value = str.__str__(value)
    if not value:
        raise ValidationError(name, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(name, f"must be at most {max_len} characters")
    if (_BAD_TEXT_CHARS if text else _BAD_CHARS).search(value):
        raise ValidationError(name, "must not contain control characters")
    return value


def _check_event_id(value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError("event_id", f"must be a string, not {type(value).__name__}")
    value = str.__str__(value)  # the contents, not a subclass's __str__
    if not _EVENT_ID.fullmatch(value):
        raise ValidationError(
            "event_id", "must be 1 to 256 printable ASCII characters without spaces"
        )
    return value


def _check_time(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError(name, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(name, "must be timezone-aware")
    if value.tzinfo is UTC and type(value) is datetime:
        return value
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise ValidationError(name, "is out of range in UTC") from err
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


def _check_hash(value: object, name: str) -> bytes:
    if type(value) is bytes and len(value) == 32:
        return value
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValidationError(name, f"must be 32 bytes, not {type(value).__name__}")
    # Convert before measuring: a memoryview's len() counts items, not bytes.
    value = bytes(value)
    if len(value) != 32:
        raise ValidationError(name, f"must be 32 bytes, not {len(value)}")
    return value


def _check_enum(value: object, name: str, table: Mapping[str, _E]) -> _E:
    # StrEnum members hash and compare as their values, so one lookup serves
    # both members and plain strings.
    member = table.get(value) if isinstance(value, str) else None
    if member is None:
        allowed = ", ".join(table)
        raise ValidationError(name, f"must be one of: {allowed} (got {value!r:.64})")
    return member


def format_time(value: datetime) -> str:
    """Render a UTC datetime as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    The fraction is written, with exactly six digits, only when it is not zero,
    so each instant has one form.

    Raises:
        ValidationError: if ``value`` is not a timezone-aware datetime.
    """
    utc = _check_time(value, "time")
    return utc.replace(tzinfo=None).isoformat() + "Z"


def parse_time(text: object, name: str = "time") -> datetime:
    """Parse an RFC 3339 time with a zone (``Z`` or ``±hh:mm``) into a UTC datetime.

    Up to nine fraction digits are accepted; digits beyond the sixth
    (sub-microsecond) are truncated, since Python datetimes hold microseconds.

    Raises:
        ValidationError: naming ``name`` if ``text`` is not such a time (a time
            without a zone included) or is out of range.
    """
    if not isinstance(text, str):
        raise ValidationError(name, f"must be an RFC 3339 time string, not {type(text).__name__}")
    m = _TIME.fullmatch(text)
    if m is None:
        if _NAIVE_TIME.fullmatch(text):
            raise ValidationError(name, "has no time zone: add Z or an offset like +01:00")
        raise ValidationError(
            name, f"must be an RFC 3339 time like 2026-11-27T10:15:00Z: {text[:64]!r}"
        )
    offset_minutes = m.group(1)
    if offset_minutes is not None and offset_minutes > "59":
        raise ValidationError(name, f"has an invalid zone offset: {text[:64]!r}")
    try:
        # The regex has pinned the syntax down; fromisoformat (3.11) reads it,
        # truncating fraction digits beyond the sixth.
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not UTC:
            parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError) as err:
        raise ValidationError(name, f"is not a valid time: {err}") from err
    return parsed


def _parse_time(text: object, name: str) -> tuple[datetime, str]:
    # parse_time, also returning the canonical form (format_time) of the time.
    # A time already written in canonical form is its own canonical form, which
    # saves formatting it again for the encoding; anything else is parsed by
    # the general path and formatted.
    if type(text) is str and _CANONICAL_TIME.fullmatch(text) is not None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as err:
            raise ValidationError(name, f"is not a valid time: {err}") from err
        # CPython reads "Z" as the UTC singleton; were that to change, this
        # keeps each time's tzinfo the one parse_time gives.
        return (parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)), text
    parsed = parse_time(text, name)
    return parsed, _time_str(parsed)


def timestamp_micros(value: datetime) -> int:
    """Return ``value`` as whole microseconds since the Unix epoch (an envelope's logged_at).

    Raises:
        MalformedError: if ``value`` is naive or before the epoch.
    """
    utc = _check_time(value, "logged_at")
    micros = (utc - _EPOCH) // _ONE_MICROSECOND
    if micros < 0:
        raise MalformedError("logged_at must not be before 1970-01-01T00:00:00Z")
    return micros


# ---------------------------------------------------------------------------
# Extensions: a frozen, hashable JSON-like map.


class FrozenMap(Mapping[str, JSONValue]):
    """An immutable, validated map of ``extensions`` values.

    Keys are non-empty strings (at most 256 characters, no control
    characters), iterated in UTF-8 byte order. Values are strings (at most
    8192 characters; newlines and tabs allowed), integers within int64, bools,
    ``None``, lists (held as tuples) and nested maps (held as ``FrozenMap``).
    Floats are refused: they have no canonical encoding. Two maps are equal
    when their canonical encodings are, so ``True`` and ``1`` differ.
    """

    __slots__ = ("_items", "_packed", "_plain")

    _items: dict[str, JSONValue]
    _plain: dict[str, object]
    _packed: bytes | None

    def __init__(self, data: Mapping[str, object] | None = None) -> None:
        """Validate and freeze ``data``.

        Raises:
            ValidationError: naming the offending entry under ``extensions``.
        """
        frozen = _freeze_map(data or {}, "extensions", 1)
        self._items = frozen._items
        self._plain = frozen._plain
        self._packed = None

    @classmethod
    def _make(cls, items: dict[str, JSONValue], plain: dict[str, object]) -> FrozenMap:
        obj = cls.__new__(cls)
        obj._items = items
        obj._plain = plain
        obj._packed = None
        return obj

    def __getitem__(self, key: str) -> JSONValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def _canonical(self) -> bytes:
        if self._packed is None:
            self._packed = _packb(self._plain)
        return self._packed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenMap):
            return self._canonical() == other._canonical()
        if isinstance(other, Mapping):
            try:
                return self._canonical() == FrozenMap(other)._canonical()
            except ValidationError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._canonical())

    def __repr__(self) -> str:
        return f"FrozenMap({self._plain!r})"

    def to_json(self) -> dict[str, object]:
        """Return a fresh, mutable copy as plain dicts and lists.

        Raises:
            Nothing: the map was validated when it was built.
        """
        return _thaw_map(self._plain)


_EMPTY_MAP = FrozenMap._make({}, {})


def _plain_map(value: Mapping[str, JSONValue]) -> dict[str, object]:
    # Event.extensions is always a FrozenMap once built; the annotation is wider
    # so that callers may pass a dict.
    return value._plain if isinstance(value, FrozenMap) else FrozenMap(value)._plain


def _thaw_map(plain: dict[str, object]) -> dict[str, object]:
    return {k: _thaw(v) for k, v in plain.items()}


def _thaw(value: object) -> object:
    if isinstance(value, dict):
        return _thaw_map(value)
    if isinstance(value, list):
        return [_thaw(v) for v in value]
    return value


def _freeze_map(value: Mapping[Any, object], path: str, depth: int) -> FrozenMap:
    # A FrozenMap is reused only at the top: nested inside another map its
    # depth must be counted again, or an event could be built that no decoder
    # would accept.
    if depth == 1 and isinstance(value, FrozenMap):
        return value
    if depth > MAX_EXTENSION_DEPTH:
        raise ValidationError(path, f"nests more than {MAX_EXTENSION_DEPTH} levels deep")
    for key in value:
        if not isinstance(key, str):
            raise ValidationError(path, f"keys must be strings, not {type(key).__name__}")
    items: dict[str, JSONValue] = {}
    plain: dict[str, object] = {}
    # Code-point order is UTF-8 byte order (surrogates are refused), so the
    # canonical key order is plain sorted().
    for key in sorted(value):
        sub = f"{path}.{key}"
        _check_str(key, sub, _MAX_ID)
        frozen, raw = _freeze(value[key], sub, depth)
        items[key] = frozen
        plain[key] = raw
    return FrozenMap._make(items, plain)


def _freeze(value: object, path: str, depth: int) -> tuple[JSONValue, object]:
    if value is None or isinstance(value, bool):
        return value, value
    if isinstance(value, int):
        if not _MIN_INT64 <= value <= _MAX_INT64:
            raise ValidationError(path, "integers must fit in 64 signed bits")
        number = int(value)
        return number, number
    if isinstance(value, str):
        text = _check_str(value, path, _MAX_TEXT, text=True) if value else ""
        return text, text
    if isinstance(value, float):
        raise ValidationError(
            path,
            "floats are not allowed (they have no canonical encoding): use an integer or a string",
        )
    if isinstance(value, Mapping):
        fm = _freeze_map(value, path, depth + 1)
        return fm, fm._plain
    if isinstance(value, list | tuple):
        if depth + 1 > MAX_EXTENSION_DEPTH:
            raise ValidationError(path, f"nests more than {MAX_EXTENSION_DEPTH} levels deep")
        frozen_items: list[JSONValue] = []
        raw_items: list[object] = []
        for i, item in enumerate(value):
            f, r = _freeze(item, f"{path}[{i}]", depth + 1)
            frozen_items.append(f)
            raw_items.append(r)
        return tuple(frozen_items), raw_items
    raise ValidationError(path, f"{type(value).__name__} is not a JSON value")


# ---------------------------------------------------------------------------
# Values.


def _set_str(obj: object, name: str, value: object, max_len: int, *, text: bool = False) -> None:
    # Validate an optional string field, replacing it only if it must change
    # (a str subclass): object.__setattr__ on a frozen dataclass is not free.
    if value is not None:
        checked = _check_str(value, name, max_len, text=text)
        if checked is not value:
            object.__setattr__(obj, name, checked)


def _set_time(obj: object, name: str, value: object) -> datetime | None:
    if value is None:
        return None
    utc = _check_time(value, name)
    if utc is not value:
        object.__setattr__(obj, name, utc)
    return utc


def _set_hash(obj: object, name: str, value: object) -> None:
    if value is not None:
        checked = _check_hash(value, name)
        if checked is not value:
            object.__setattr__(obj, name, checked)


@dataclass(frozen=True, slots=True)
class Party:
    """An actor or recipient: its kind, and optionally an ID and an organization.

    ``id`` is at most 256 characters, ``organization`` at most 1024; neither
    may be empty or contain control characters.
    """

    kind: ActorKind
    id: str | None = None
    organization: str | None = None

    def __post_init__(self) -> None:
        """Validate and normalise.

        Raises:
            ValidationError: naming ``kind``, ``id`` or ``organization``.
        """
        kind = _check_enum(self.kind, "kind", _ACTOR_KINDS)
        if kind is not self.kind:
            object.__setattr__(self, "kind", kind)
        _set_str(self, "id", self.id, _MAX_ID)
        _set_str(self, "organization", self.organization, _MAX_OTHER)


@dataclass(frozen=True, slots=True)
class Clip:
    """A piece of footage: its ID, the SHA-256 of its content and its time range.

    ``end`` must not be before ``start``; both are normalised to UTC.
    """

    clip_id: str
    sha256: bytes
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        """Validate and normalise.

        Raises:
            ValidationError: naming ``clip_id``, ``sha256``, ``start`` or ``end``.
        """
        if self.clip_id is None or self.sha256 is None:
            raise ValidationError("clip_id" if self.clip_id is None else "sha256", "is required")
        _set_str(self, "clip_id", self.clip_id, _MAX_ID)
        _set_hash(self, "sha256", self.sha256)
        start = _check_time(self.start, "start")
        end = _check_time(self.end, "end")
        if end < start:
            raise ValidationError("end", "must not be before start")
        if start is not self.start:
            object.__setattr__(self, "start", start)
        if end is not self.end:
            object.__setattr__(self, "end", end)


@dataclass(frozen=True, slots=True)
class Event:
    """One access to footage: who did what to which footage, for whom, on what basis.

    Construction validates every field (a bad one raises
    :class:`ValidationError` naming it), normalises times to UTC, converts
    enum strings to members, ``footage`` to a tuple and ``extensions`` to a
    :class:`FrozenMap`, and computes the canonical encoding once (so
    :func:`encode_event` is free). ``consent`` says whether the owner
    consented; ``derived_from`` is the SHA-256 of the original footage when a
    clip or redaction is handled.
    """

    event_id: str
    occurred_at: datetime
    camera_id: str
    action: Action
    actor: Party
    owner_id: str | None = None
    footage: tuple[Clip, ...] = ()
    recipient: Party | None = None
    legal_basis: LegalBasis | None = None
    legal_reference: str | None = None
    justification: str | None = None
    consent: bool | None = None
    owner_notified_at: datetime | None = None
    notification_deferred_until: datetime | None = None
    purpose: str | None = None
    derived_from: bytes | None = None
    extensions: Mapping[str, JSONValue] = _EMPTY_MAP
    _encoded: bytes = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        """Validate, normalise and encode.

        Raises:
            ValidationError: naming the first bad field, or ``<event>`` if the
                canonical encoding is larger than :data:`MAX_EVENT_SIZE`.
        """
        put = object.__setattr__
        event_id = _check_event_id(self.event_id)
        if event_id is not self.event_id:
            put(self, "event_id", event_id)
        if _set_time(self, "occurred_at", self.occurred_at) is None:
            raise ValidationError("occurred_at", "is required")
        if self.camera_id is None:
            raise ValidationError("camera_id", "is required")
        _set_str(self, "camera_id", self.camera_id, _MAX_ID)
        action = _check_enum(self.action, "action", _ACTIONS)
        if action is not self.action:
            put(self, "action", action)
        if not isinstance(self.actor, Party):
            raise ValidationError("actor", "must be a Party")
        _set_str(self, "owner_id", self.owner_id, _MAX_ID)
        footage = self.footage
        if type(footage) is not tuple:
            if not isinstance(footage, list | tuple):
                raise ValidationError("footage", "must be a list of clips")
            footage = tuple(footage)
            put(self, "footage", footage)
        for i, clip in enumerate(footage):
            if not isinstance(clip, Clip):
                raise ValidationError(f"footage[{i}]", "must be a Clip")
        if self.recipient is not None and not isinstance(self.recipient, Party):
            raise ValidationError("recipient", "must be a Party")
        if self.legal_basis is not None:
            basis = _check_enum(self.legal_basis, "legal_basis", _LEGAL_BASES)
            if basis is not self.legal_basis:
                put(self, "legal_basis", basis)
        _set_str(self, "legal_reference", self.legal_reference, _MAX_OTHER)
        _set_str(self, "justification", self.justification, _MAX_TEXT, text=True)
        if self.consent is not None and not isinstance(self.consent, bool):
            raise ValidationError("consent", "must be true, false or absent")
        _set_time(self, "owner_notified_at", self.owner_notified_at)
        _set_time(self, "notification_deferred_until", self.notification_deferred_until)
        _set_str(self, "purpose", self.purpose, _MAX_TEXT)
        _set_hash(self, "derived_from", self.derived_from)
        ext = self.extensions
        if not isinstance(ext, FrozenMap):
            if not isinstance(ext, Mapping):
                raise ValidationError("extensions", "must be a map of names to values")
            put(self, "extensions", _freeze_map(ext, "extensions", 1))
        put(self, "_encoded", _encode(self))


# ---------------------------------------------------------------------------
# Canonical encoding.


def _party_plain(party: Party) -> dict[str, object]:
    # Keys in UTF-8 byte order: id, kind, organization.
    out: dict[str, object] = {}
    if party.id is not None:
        out["id"] = party.id
    out["kind"] = party.kind
    if party.organization is not None:
        out["organization"] = party.organization
    return out


def _clip_plain(clip: Clip, start: str, end: str) -> dict[str, object]:
    # Keys in UTF-8 byte order; the times already in canonical form.
    return {"clip_id": clip.clip_id, "end": end, "sha256": clip.sha256, "start": start}


def _time_str(value: datetime) -> str:
    # Times are UTC with a plain UTC tzinfo by construction.
    return value.isoformat()[:-6] + "Z"


_local = threading.local()


def _packb(value: object) -> bytes:
    # A Packer per thread (Packer objects are not thread-safe): cheaper than
    # msgpack.packb, which builds one per call.
    try:
        packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    packed: bytes = packer.pack(value)
    return packed


def _pack_event(  # noqa: PLR0917  # positional, in the encoding's key order
    action: Action,
    actor: dict[str, object],
    camera_id: str,
    consent: bool | None,
    derived_from: bytes | None,
    event_id: str,
    extensions: dict[str, object],
    footage: list[dict[str, object]],
    justification: str | None,
    legal_basis: LegalBasis | None,
    legal_reference: str | None,
    notification_deferred_until: str | None,
    occurred_at: str,
    owner_id: str | None,
    owner_notified_at: str | None,
    purpose: str | None,
    recipient: dict[str, object] | None,
) -> bytes:
    # The one place that knows the encoding's layout; every argument is in its
    # encoded form already (times as canonical strings, parties and clips as
    # maps). Keys are inserted in UTF-8 byte order; msgpack keeps insertion
    # order. A test checks the order against sorted(). Enum members are packed
    # as the strs they are (msgpack packs str subclasses as str), skipping the
    # slow ``.value`` descriptor.
    m: dict[str, object] = {"action": action, "actor": actor, "camera_id": camera_id}
    if consent is not None:
        m["consent"] = consent
    if derived_from is not None:
        m["derived_from"] = derived_from
    m["event_id"] = event_id
    if extensions:
        m["extensions"] = extensions
    if footage:
        m["footage"] = footage
    if justification is not None:
        m["justification"] = justification
    if legal_basis is not None:
        m["legal_basis"] = legal_basis
    if legal_reference is not None:
        m["legal_reference"] = legal_reference
    if notification_deferred_until is not None:
        m["notification_deferred_until"] = notification_deferred_until
    m["occurred_at"] = occurred_at
    if owner_id is not None:
        m["owner_id"] = owner_id
    if owner_notified_at is not None:
        m["owner_notified_at"] = owner_notified_at
    if purpose is not None:
        m["purpose"] = purpose
    if recipient is not None:
        m["recipient"] = recipient
    encoded = _packb(m)
    if len(encoded) > MAX_EVENT_SIZE:
        raise ValidationError(
            "<event>",
            f"canonical encoding is {len(encoded)} bytes, more than {MAX_EVENT_SIZE}",
        )
    return encoded


def _optional_time_str(value: datetime | None) -> str | None:
    return None if value is None else _time_str(value)


def _encode(ev: Event) -> bytes:
    return _pack_event(
        ev.action,
        _party_plain(ev.actor),
        ev.camera_id,
        ev.consent,
        ev.derived_from,
        ev.event_id,
        _plain_map(ev.extensions),
        [_clip_plain(c, _time_str(c.start), _time_str(c.end)) for c in ev.footage],
        ev.justification,
        ev.legal_basis,
        ev.legal_reference,
        _optional_time_str(ev.notification_deferred_until),
        _time_str(ev.occurred_at),
        ev.owner_id,
        _optional_time_str(ev.owner_notified_at),
        ev.purpose,
        None if ev.recipient is None else _party_plain(ev.recipient),
    )


def encode_event(event: Event) -> bytes:
    """Return the canonical encoding of ``event``.

    The encoding is msgpack (str and bin kept apart) of one map whose keys are
    the field names in UTF-8 byte order, recursively, with absent fields (None,
    empty ``footage``, empty ``extensions``) omitted. Times are strings
    ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` in UTC, hashes 32-byte bins, enums their
    string values, integers msgpack's shortest form. ``footage`` is an array of
    maps ``{clip_id, end, sha256, start}``; ``actor`` and ``recipient`` are
    maps ``{id, kind, organization}``. New optional fields may be added later:
    an old event, which lacks them, keeps its encoding.

    The encoding is computed when the event is built, so this is a lookup.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    if not isinstance(event, Event):
        raise MalformedError(f"expected an Event, not {type(event).__name__}")
    return event._encoded


def refuse_ext(code: int, data: bytes) -> object:
    """The msgpack ``ext_hook`` of every strict decoder: events use no extension types.

    Raises:
        ValueError: always (msgpack reports it as malformed input).
    """
    raise ValueError(f"msgpack extension type {code} is not allowed")


def decode_event(data: bytes) -> Event:
    """Decode a canonical event encoding (see :func:`encode_event`), strictly.

    The event is rebuilt with full validation, then re-encoded: anything but
    the one canonical encoding of that event (key order, integer widths,
    time forms, duplicate keys, trailing bytes) is refused.

    Raises:
        MalformedError: if ``data`` is too large, is not msgpack, or is not canonical.
        ValidationError: (a MalformedError) if the decoded event is invalid.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"event encoding must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_EVENT_SIZE:
        raise MalformedError(f"event encoding is larger than {MAX_EVENT_SIZE} bytes")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=refuse_ext,
            max_str_len=MAX_EVENT_SIZE,
            max_bin_len=MAX_EVENT_SIZE,
            max_array_len=MAX_EVENT_SIZE,
            max_map_len=MAX_EVENT_SIZE,
            max_ext_len=0,
        )
    except (ValueError, msgpack.UnpackException) as err:
        raise MalformedError(f"event encoding is not valid msgpack: {err}") from err
    event = _event_from_plain(obj, binary=True)
    if event._encoded != data:
        raise MalformedError("event encoding is not canonical")
    return event


# ---------------------------------------------------------------------------
# JSON form (and the decoded msgpack map, which has the same shape).

# The field names come from the dataclasses themselves, so they cannot drift.
_EVENT_FIELDS = frozenset(Event.__slots__) - {"_encoded"}
_REQUIRED = ("event_id", "occurred_at", "camera_id", "action", "actor")
_PARTY_FIELDS = frozenset(Party.__slots__)
_CLIP_FIELDS: tuple[str, ...] = Clip.__slots__
_CLIP_FIELD_SET = frozenset(_CLIP_FIELDS)


def _check_keys(obj: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if type(obj) is dict and allowed.issuperset(obj):
        return obj
    if not isinstance(obj, Mapping):
        raise ValidationError(path, f"must be an object, not {type(obj).__name__}")
    unknown = obj.keys() - allowed
    if unknown:
        first = sorted(map(str, unknown))[0]
        where = first if path == "<event>" else f"{path}.{first}"
        raise ValidationError(where, "unknown field")
    return obj


def _hash_from_plain(value: object, name: str, binary: bool) -> bytes:
    if binary:
        if not isinstance(value, bytes):
            raise ValidationError(name, "must be a 32-byte bin")
        return _check_hash(value, name)
    if type(value) is str and len(value) == 64:
        # Without the regex: fromhex also reads upper case and spaces, but only
        # 64 lowercase hex digits are the .hex() of the 32 bytes they give.
        try:
            digest = bytes.fromhex(value)
        except ValueError:
            pass
        else:
            if len(digest) == 32 and digest.hex() == value:
                return digest
    if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
        raise ValidationError(name, "must be 64 lowercase hexadecimal digits")
    return bytes.fromhex(value)


# Building values from plain maps (parsed JSON, decoded msgpack) checks each
# field once, here, and then fills the frozen dataclass's slots directly
# instead of calling its constructor, whose __post_init__ would check them all
# again. The builders make the constructors' checks, with the same messages,
# and build the encoded form as they go (a time given in canonical form is not
# formatted again), so the values built are the same as the constructors'.
# The order differs in places (the JSON path reads times and hashes before
# some strings), so when several fields are bad the one named first can
# differ; every bad field is refused either way. Calling Event(...) from user
# code still validates everything.
#
# The slots are filled through a twin: a plain class with the same slots, whose
# instance then becomes the dataclass by __class__ assignment (which Python
# allows between classes of the same layout, and checks). Plain slot stores
# cost a third of object.__setattr__ calls, and an event has 18 slots.


class _ClipTwin:
    __slots__ = Clip.__slots__  # the same layout, by construction

    def __init__(self, clip_id: str, sha256: bytes, start: datetime, end: datetime) -> None:
        self.clip_id = clip_id
        self.sha256 = sha256
        self.start = start
        self.end = end


class _EventTwin:
    __slots__ = Event.__slots__  # the same layout, by construction

    def __init__(  # noqa: PLR0917  # positional, in the field order, like Event's own
        self,
        event_id: str,
        occurred_at: datetime,
        camera_id: str,
        action: Action,
        actor: Party,
        owner_id: str | None,
        footage: tuple[Clip, ...],
        recipient: Party | None,
        legal_basis: LegalBasis | None,
        legal_reference: str | None,
        justification: str | None,
        consent: bool | None,
        owner_notified_at: datetime | None,
        notification_deferred_until: datetime | None,
        purpose: str | None,
        derived_from: bytes | None,
        extensions: FrozenMap,
        encoded: bytes,
    ) -> None:
        self.event_id = event_id
        self.occurred_at = occurred_at
        self.camera_id = camera_id
        self.action = action
        self.actor = actor
        self.owner_id = owner_id
        self.footage = footage
        self.recipient = recipient
        self.legal_basis = legal_basis
        self.legal_reference = legal_reference
        self.justification = justification
        self.consent = consent
        self.owner_notified_at = owner_notified_at
        self.notification_deferred_until = notification_deferred_until
        self.purpose = purpose
        self.derived_from = derived_from
        self.extensions = extensions
        self._encoded = encoded


# Parties recur from event to event (the same employee, the same police
# force), so built ones are kept, with their encoded form, keyed by their
# plain-str fields. Both are immutable once built: the encoded map is only
# ever read by the packer. Bounded by clearing, which a racing thread can only
# make it miss.
_PARTY_CACHE: dict[tuple[str, str | None, str | None], tuple[Party, dict[str, object]]] = {}
_PARTY_CACHE_SIZE = 4096


def _party_from_plain(obj: object, path: str) -> tuple[Party, dict[str, object]]:
    # Returns the party and its encoded form.
    d = _check_keys(obj, path, _PARTY_FIELDS)
    get = d.get
    kind = get("kind")
    if kind is None:
        raise ValidationError(f"{path}.kind", "is required")
    pid = get("id")
    org = get("organization")
    if (
        type(kind) is str
        and (pid is None or type(pid) is str)
        and (org is None or type(org) is str)
    ):
        key = (kind, pid, org)
        cached = _PARTY_CACHE.get(key)
        if cached is not None:
            return cached
    else:
        key = None
    try:
        party = Party(d["kind"], pid, org)
    except ValidationError as err:
        raise err.under(path) from err
    built = party, _party_plain(party)
    if key is not None:
        if len(_PARTY_CACHE) >= _PARTY_CACHE_SIZE:
            _PARTY_CACHE.clear()
        _PARTY_CACHE[key] = built
    return built


def _clip_from_plain(obj: object, index: int, binary: bool) -> tuple[Clip, dict[str, object]]:
    # Returns the clip and its encoded form. The field path is only written
    # out for an error.
    if type(obj) is not dict or not _CLIP_FIELD_SET.issuperset(obj):
        _check_keys(obj, f"footage[{index}]", _CLIP_FIELD_SET)
    try:
        return _clip_fields(obj, binary)  # type: ignore[arg-type]  # a Mapping, checked above
    except ValidationError as err:
        raise err.under(f"footage[{index}]") from err


def _clip_fields(d: Mapping[str, Any], binary: bool) -> tuple[Clip, dict[str, object]]:
    get = d.get
    clip_id = get("clip_id")
    sha = get("sha256")
    start_text = get("start")
    end_text = get("end")
    if clip_id is None or sha is None or start_text is None or end_text is None:
        for name in _CLIP_FIELDS:
            if get(name) is None:
                raise ValidationError(name, "is required")
    sha = _hash_from_plain(sha, "sha256", binary)
    start, start_str = _parse_time(start_text, "start")
    end, end_str = _parse_time(end_text, "end")
    clip_id = _check_str(clip_id, "clip_id", _MAX_ID)
    if end < start:
        raise ValidationError("end", "must not be before start")
    clip = _ClipTwin(clip_id, sha, start, end)
    clip.__class__ = Clip  # type: ignore[assignment]  # see _EventTwin
    return cast(Clip, clip), {"clip_id": clip_id, "end": end_str, "sha256": sha, "start": start_str}


def _event_from_plain(obj: object, *, binary: bool) -> Event:
    # The structural checks first, then those of Event.__post_init__, in its
    # order: an event with several faults is refused for the same one as when
    # this built the fields and called Event(**fields).
    d = _check_keys(obj, "<event>", _EVENT_FIELDS)
    get = d.get
    event_id = get("event_id")
    occurred_at = get("occurred_at")
    camera_id = get("camera_id")
    action = get("action")
    actor = get("actor")
    if event_id is None or occurred_at is None or camera_id is None or action is None:
        for name in _REQUIRED:
            if get(name) is None:
                raise ValidationError(name, "is required")
    if actor is None:
        raise ValidationError("actor", "is required")
    occurred_at, occurred_str = _parse_time(occurred_at, "occurred_at")
    actor, actor_plain = _party_from_plain(actor, "actor")
    footage_in = get("footage")
    clips: list[Clip] = []
    footage_plain: list[dict[str, object]] = []
    if footage_in is not None:
        if not isinstance(footage_in, list):
            raise ValidationError("footage", "must be a list of clips")
        for i, c in enumerate(footage_in):
            clip, clip_plain = _clip_from_plain(c, i, binary)
            clips.append(clip)
            footage_plain.append(clip_plain)
    footage = tuple(clips)
    recipient = get("recipient")
    recipient_plain = None
    if recipient is not None:
        recipient, recipient_plain = _party_from_plain(recipient, "recipient")
    notified_at = get("owner_notified_at")
    notified_str = None
    if notified_at is not None:
        notified_at, notified_str = _parse_time(notified_at, "owner_notified_at")
    deferred = get("notification_deferred_until")
    deferred_str = None
    if deferred is not None:
        deferred, deferred_str = _parse_time(deferred, "notification_deferred_until")
    derived = get("derived_from")
    if derived is not None:
        derived = _hash_from_plain(derived, "derived_from", binary)
    ext = get("extensions")
    if ext is not None and not isinstance(ext, Mapping):
        raise ValidationError("extensions", "must be an object")

    # What Event.__post_init__ checks, in its order.
    if not (
        type(event_id) is str
        and 0 < len(event_id) <= _MAX_ID
        and event_id.isascii()
        and event_id.isprintable()
        and " " not in event_id
    ):
        event_id = _check_event_id(event_id)
    camera_id = _check_str(camera_id, "camera_id", _MAX_ID)
    action = _check_enum(action, "action", _ACTIONS)
    owner_id = get("owner_id")
    if owner_id is not None:
        owner_id = _check_str(owner_id, "owner_id", _MAX_ID)
    legal_basis = get("legal_basis")
    if legal_basis is not None:
        legal_basis = _check_enum(legal_basis, "legal_basis", _LEGAL_BASES)
    legal_reference = get("legal_reference")
    if legal_reference is not None:
        legal_reference = _check_str(legal_reference, "legal_reference", _MAX_OTHER)
    justification = get("justification")
    if justification is not None:
        justification = _check_str(justification, "justification", _MAX_TEXT, text=True)
    consent = get("consent")
    if consent is not None and not isinstance(consent, bool):
        raise ValidationError("consent", "must be true, false or absent")
    purpose = get("purpose")
    if purpose is not None:
        purpose = _check_str(purpose, "purpose", _MAX_TEXT)
    extensions = _EMPTY_MAP if ext is None else _freeze_map(ext, "extensions", 1)

    encoded = _pack_event(
        action,
        actor_plain,
        camera_id,
        consent,
        derived,
        event_id,
        extensions._plain,
        footage_plain,
        justification,
        legal_basis,
        legal_reference,
        deferred_str,
        occurred_str,
        owner_id,
        notified_str,
        purpose,
        recipient_plain,
    )
    event = _EventTwin(
        event_id,
        occurred_at,
        camera_id,
        action,
        actor,
        owner_id,
        footage,
        recipient,
        legal_basis,
        legal_reference,
        justification,
        consent,
        notified_at,
        deferred,
        purpose,
        derived,
        extensions,
        encoded,
    )
    event.__class__ = Event  # type: ignore[assignment]  # see _EventTwin
    return cast(Event, event)


def event_from_json(obj: object) -> Event:
    """Build an event from its JSON form (a parsed JSON object).

    The object has exactly the :class:`Event` field names. Times are RFC 3339
    strings with a zone (see :func:`parse_time`), hashes 64 lowercase hex
    digits, enums their string values, ``actor`` and ``recipient`` objects
    ``{kind, id, organization}``, ``footage`` a list of objects ``{clip_id,
    sha256, start, end}``, ``extensions`` an object of JSON values without
    floats. A ``null`` optional field counts as absent.

    Raises:
        ValidationError: naming the field (a dotted path such as
            ``footage[1].sha256``) that is unknown, missing, of the wrong type
            or invalid.
    """
    return _event_from_plain(obj, binary=False)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValidationError("<json>", f"duplicate key {key!r} in an object")
            seen.add(key)
    return out


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not allowed")


# One decoder for every call: json.loads with hooks builds a new one each time.
# Sharing it between threads is safe: its only state is a key-interning memo,
# each use of which happens with the GIL held (json.loads shares its default
# decoder the same way).
_JSON_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
# The decoder's scanner, which decode() calls after skipping white space; not
# in the type stubs, but set by JSONDecoder.__init__ since Python 2.6.
_JSON_SCAN: Callable[[str, int], tuple[object, int]] = _JSON_DECODER.scan_once  # type: ignore[attr-defined]
_MAX_UTF8_PER_CHAR = 4


def _json_loads(text: str) -> object:
    # json.loads(text, object_pairs_hook=..., parse_constant=...), errors
    # included. A text that starts with its object and ends where the object
    # ends (a JSON Lines line) goes to the scanner directly; anything else
    # (leading or trailing white space or data, a BOM, an error) takes the
    # decoder's own path.
    if text[:1] == "{":
        try:
            obj, end = _JSON_SCAN(text, 0)
        except StopIteration:
            pass
        else:
            if end == len(text):
                return obj
    if text.startswith("\ufeff"):
        # What json.loads says before it hands a str to the decoder.
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _JSON_DECODER.decode(text)


def event_from_json_text(text: str | bytes) -> Event:
    """Parse one JSON object (one JSON Lines line) into an event.

    Bytes must be UTF-8. The text may be at most :data:`MAX_EVENT_SIZE` bytes;
    duplicate keys and the non-standard constants NaN and Infinity are refused.

    Raises:
        ValidationError: with field ``<json>`` if the text is too large, not
            UTF-8 or not valid JSON; otherwise as :func:`event_from_json`.
    """
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_EVENT_SIZE:
            raise ValidationError("<json>", f"is larger than {MAX_EVENT_SIZE} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValidationError("<json>", "is not valid UTF-8") from err
    elif isinstance(text, str):
        n = len(text)
        if n > MAX_EVENT_SIZE or (
            # Only a long text that is not ASCII can be within the limit in
            # characters and over it in bytes.
            not (type(text) is str and (text.isascii() or n * _MAX_UTF8_PER_CHAR <= MAX_EVENT_SIZE))
            and len(text.encode("utf-8", "surrogatepass")) > MAX_EVENT_SIZE
        ):
            raise ValidationError("<json>", f"is larger than {MAX_EVENT_SIZE} bytes")
    else:
        raise ValidationError("<json>", f"must be str or bytes, not {type(text).__name__}")
    try:
        obj = _json_loads(text)
    except (ValueError, RecursionError) as err:
        raise ValidationError("<json>", f"is not valid JSON: {err}") from err
    return _event_from_plain(obj, binary=False)


def _party_json(party: Party) -> dict[str, object]:
    out: dict[str, object] = {"kind": party.kind.value}
    if party.id is not None:
        out["id"] = party.id
    if party.organization is not None:
        out["organization"] = party.organization
    return out


def event_to_json(event: Event) -> dict[str, object]:
    """Return the JSON form of ``event`` (a fresh dict; :func:`event_from_json` reverses it).

    Absent fields are omitted; times are ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
    """
    if not isinstance(event, Event):
        raise MalformedError(f"expected an Event, not {type(event).__name__}")
    out: dict[str, object] = {
        "event_id": event.event_id,
        "occurred_at": _time_str(event.occurred_at),
        "camera_id": event.camera_id,
        "action": event.action.value,
        "actor": _party_json(event.actor),
    }
    if event.owner_id is not None:
        out["owner_id"] = event.owner_id
    if event.footage:
        out["footage"] = [
            {
                "clip_id": c.clip_id,
                "sha256": c.sha256.hex(),
                "start": _time_str(c.start),
                "end": _time_str(c.end),
            }
            for c in event.footage
        ]
    if event.recipient is not None:
        out["recipient"] = _party_json(event.recipient)
    if event.legal_basis is not None:
        out["legal_basis"] = event.legal_basis.value
    if event.legal_reference is not None:
        out["legal_reference"] = event.legal_reference
    if event.justification is not None:
        out["justification"] = event.justification
    if event.consent is not None:
        out["consent"] = event.consent
    if event.owner_notified_at is not None:
        out["owner_notified_at"] = _time_str(event.owner_notified_at)
    if event.notification_deferred_until is not None:
        out["notification_deferred_until"] = _time_str(event.notification_deferred_until)
    if event.purpose is not None:
        out["purpose"] = event.purpose
    if event.derived_from is not None:
        out["derived_from"] = event.derived_from.hex()
    if event.extensions:
        out["extensions"] = _thaw_map(_plain_map(event.extensions))
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
    if _BAD_CHARS.search(origin):
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
    # encode_content made Envelope()'s field checks; the signature is 64 bytes.
    return _envelope(seq, prev, logged_at, signer.key_id, bytes(event_bytes), signature, content)


def unpack_header(leaf: bytes) -> tuple[int, int, bytes, int, int, int]:
    """Check an envelope's framing and return its header fields.

    This is the one place the header is checked: the ledger's check, the
    owner's verifier and :func:`parse_envelope` all call it. It returns
    ``(version, seq, prev, logged_at, key_id, event_length)``; the event and
    the signature are not looked at.

    Raises:
        MalformedError: if the length is not exactly 57 + L + 64, the version
            is not 1, L exceeds :data:`MAX_EVENT_SIZE` or logged_at is outside
            1970 to the end of 9999.
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
            is not 1, L exceeds :data:`MAX_EVENT_SIZE` or logged_at is negative.
    """
    if not isinstance(leaf, bytes | bytearray | memoryview):
        raise MalformedError(f"envelope must be bytes, not {type(leaf).__name__}")
    leaf = bytes(leaf)
    _version, seq, prev, logged_at, key, length = unpack_header(leaf)
    end = HEADER_SIZE + length
    # Every check Envelope() makes has been made, and the signed content is
    # the leaf's first 57 + L bytes.
    return _envelope(seq, prev, logged_at, key, leaf[HEADER_SIZE:end], leaf[end:], leaf[:end])


def _envelope(  # noqa: PLR0917  # positional, in the field order
    seq: int,
    prev: bytes,
    logged_at: int,
    key_id: int,
    event_bytes: bytes,
    signature: bytes,
    content: bytes,
) -> Envelope:
    # An Envelope whose fields the caller has already checked and whose signed
    # content it already holds: fill the slots without re-encoding (see _EventTwin).
    env = _EnvelopeTwin(
        ENVELOPE_VERSION, seq, prev, logged_at, key_id, event_bytes, signature, content
    )
    env.__class__ = Envelope  # type: ignore[assignment]  # see _EventTwin
    return cast(Envelope, env)


class _EnvelopeTwin:
    __slots__ = Envelope.__slots__  # the same layout, by construction

    def __init__(  # noqa: PLR0917  # positional, in the field order, like Envelope's own
        self,
        version: int,
        seq: int,
        prev: bytes,
        logged_at: int,
        key_id: int,
        event_bytes: bytes,
        signature: bytes,
        content: bytes,
    ) -> None:
        self.version = version
        self.seq = seq
        self.prev = prev
        self.logged_at = logged_at
        self.key_id = key_id
        self.event_bytes = event_bytes
        self.signature = signature
        self._content = content


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
