"""The event schema and its canonical encoding.

This module owns what one event may say and the bytes it is signed as: the
closed sets of actions, actor kinds and legal bases, and :class:`Event`,
:class:`Party` and :class:`Clip` declared as msgspec Structs, whose decoders
check every field in C while they read it and name the offending one by its
path (``$.actor.kind``); the canonical MessagePack encoding
(:func:`encode_event`, :func:`decode_event`); and times in their one written
form. :mod:`.records` builds on it: the JSON form, the classification of
accesses and the signed envelope.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import msgspec
from msgspec.structs import force_setattr

from disclosure_ledger.errors import MalformedError, ValidationError

__all__ = [
    "MAX_EVENT_SIZE",
    "MAX_EXTENSION_DEPTH",
    "Action",
    "ActorKind",
    "Clip",
    "Digest",
    "Event",
    "Extensions",
    "JSONValue",
    "LegalBasis",
    "Party",
    "check_party",
    "decode_event",
    "encode_event",
    "format_time",
    "parse_time",
    "timestamp_micros",
]

MAX_EVENT_SIZE = 65_535 - 57 - 64
"""The largest canonical event encoding (and JSON text) accepted, in bytes: a record's leaf
(57 + L + 64 bytes) must fit a tlog-tiles entry, whose uint16 length allows 65,535."""
MAX_EXTENSION_DEPTH = 16
"""How deeply lists and maps may nest inside ``extensions`` (the top map is level 1)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


# ---------------------------------------------------------------------------
# Field types. msgspec checks each constraint in C while decoding.

# Control characters (C0, DEL, C1), line/paragraph separators and
# bidirectional controls: all of them can make a field display as something it
# is not in the owner's list of disclosures. Lone surrogates cannot get this
# far: neither decoder produces them, and the encoder refuses them.
_BAD_OTHER = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
# \Z, not $: $ also matches before a final newline.
_LINE = f"^[^\x00-\x1f{_BAD_OTHER}]+\\Z"
# Free text (justification, extension strings) may also hold newlines and tabs.
_TEXT_CHARS = f"[^\x00-\x08\x0b-\x1f{_BAD_OTHER}]"
_MAX_ID = 256
_MAX_OTHER = 1024
_MAX_TEXT = 8192

# The public types check lengths only. Which characters a string holds is
# checked by _check_strings: one C pass over the JSON text clears nearly every
# event, and what it cannot clear is decoded a second time with the _Strict*
# types below, which add these patterns (a regex per string costs more than
# the rest of the decoding).
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID)]
Other = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_OTHER)]
Line = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_TEXT)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_TEXT)]
EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID)]
Time = Annotated[datetime, msgspec.Meta(tz=True)]
_SId = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_ID, pattern=_LINE)]
_SOther = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_OTHER, pattern=_LINE)]
_SLine = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX_TEXT, pattern=_LINE)]
_SText = Annotated[
    str, msgspec.Meta(min_length=1, max_length=_MAX_TEXT, pattern=f"^{_TEXT_CHARS}+\\Z")
]
_SEventId = Annotated[str, msgspec.Meta(pattern="^[\x21-\x7e]{1,256}\\Z")]


if TYPE_CHECKING:
    # To a type checker a digest is bytes, so user code passes plain bytes.
    Digest: TypeAlias = bytes
else:

    class Digest(bytes):
        """A SHA-256 digest: 32 bytes, written as 64 lowercase hex digits in the JSON form.

        A ``bytes`` subclass, so it compares, hashes and slices as the bytes
        it holds; plain ``bytes`` of the right length are accepted wherever an
        event takes one. It exists to tell msgspec that this field's JSON form
        is hex, not msgspec's base64.
        """

        __slots__ = ()


JSONValue: TypeAlias = "str | int | bool | list[JSONValue] | dict[str, JSONValue] | None"
"""A value allowed in ``extensions``: no floats, integers within int64."""
if TYPE_CHECKING:
    Extensions: TypeAlias = dict[str, JSONValue]
else:
    # msgspec 0.23 has no recursive type aliases, and spelling out the 16
    # levels as nested unions makes a type tree that doubles with each level,
    # so what is inside extensions is checked by _check_extensions.
    Extensions = dict[str, Any]
"""The type of ``extensions``: names to JSON values, nested at most 16 deep."""

_BAD_LINE = re.compile(f"[\x00-\x1f{_BAD_OTHER}]")
_BAD_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f{_BAD_OTHER}]")
_MIN_INT64 = -(1 << 63)
_MAX_INT64 = (1 << 63) - 1
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_extensions(value: dict[str, Any], chars: bool) -> None:
    # Nesting, keys, and that every value is a JSON value without floats and
    # with integers in int64. ``chars``: also check which characters the
    # strings hold (not needed when the scan of _check_strings cleared the input).
    # Returns quietly or raises naming the path; the path is only built then.
    stack: list[tuple[object, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        item, where = stack.pop()
        if type(item) is dict:
            if len(where) >= MAX_EXTENSION_DEPTH:
                raise ValidationError(
                    _ext_path(where), f"nests more than {MAX_EXTENSION_DEPTH} levels deep"
                )
            for key, sub in item.items():
                if (
                    type(key) is not str
                    or not 0 < len(key) <= _MAX_ID
                    or (chars and _BAD_LINE.search(key))
                ):
                    raise ValidationError(
                        _ext_path(where),
                        f"keys must be 1 to {_MAX_ID} characters without control characters,"
                        f" separators or bidirectional controls: {key!r:.64}",
                    )
                if type(sub) in _CONTAINERS or not _scalar_ok(sub, chars):
                    stack.append((sub, (*where, key)))
        elif type(item) is list:
            if len(where) >= MAX_EXTENSION_DEPTH:
                raise ValidationError(
                    _ext_path(where), f"nests more than {MAX_EXTENSION_DEPTH} levels deep"
                )
            stack.extend((sub, (*where, i)) for i, sub in enumerate(item))
        elif not _scalar_ok(item, chars):
            raise ValidationError(_ext_path(where), _scalar_problem(item))


_CONTAINERS = (dict, list)


def _scalar_ok(value: object, chars: bool) -> bool:
    if type(value) is str:
        return len(value) <= _MAX_TEXT and not (chars and _BAD_TEXT.search(value))
    if type(value) is int:
        return _MIN_INT64 <= value <= _MAX_INT64
    return type(value) is bool or value is None


def _scalar_problem(value: object) -> str:
    if isinstance(value, float):
        return (
            "floats are not allowed (they have no canonical encoding): use an integer or a string"
        )
    if isinstance(value, int):
        return "integers must fit in 64 signed bits"
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            return f"must be at most {_MAX_TEXT} characters"
        return "must not contain control characters, separators or bidirectional controls"
    return f"{type(value).__name__} is not a JSON value"


def _ext_path(where: tuple[str | int, ...]) -> str:
    out = "$.extensions"
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if _NAME.match(part) else f"[{json.dumps(part)}]"
    return out


def _utc(value: object, name: str) -> datetime:
    # The UTC form of a time field; raises naming the field. Decoded "Z"
    # times are already UTC, and that check is all they cost.
    if type(value) is datetime and value.tzinfo is UTC:
        return value
    if not isinstance(value, datetime):
        raise ValidationError(name, f"must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(name, "must be timezone-aware")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError) as err:
        raise ValidationError(name, "is out of range in UTC") from err
    return datetime(
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, UTC
    )


# ---------------------------------------------------------------------------
# The schema. Field declaration order is the positional order of the
# constructors and the order of the canonical encoding.


class Party(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An actor or recipient: its kind, and optionally an ID and an organization.

    ``id`` is at most 256 characters, ``organization`` at most 1024; neither
    may be empty or contain control characters.
    """

    kind: ActorKind
    id: Id | None = None
    organization: Other | None = None


class Clip(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A piece of footage: its ID, the SHA-256 of its content and its time range.

    ``end`` must not be before ``start``; both are held in UTC.
    """

    clip_id: Id
    sha256: Digest
    start: Time
    end: Time

    def __post_init__(self) -> None:
        """Hold the times in UTC and check their order.

        Raises:
            ValidationError: naming ``start`` or ``end``.
        """
        start = self.start
        end = self.end
        if type(start) is not datetime or start.tzinfo is not UTC:
            start = _utc(start, "start")
            force_setattr(self, "start", start)
        if type(end) is not datetime or end.tzinfo is not UTC:
            end = _utc(end, "end")
            force_setattr(self, "end", end)
        if end < start:
            raise ValidationError("end", "must not be before start")


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """One access to footage: who did what to which footage, for whom, on what basis.

    Every field's type and constraints are checked when an event is decoded
    (from JSON by :func:`event_from_json_text` and :func:`event_from_json`,
    from its encoding by :func:`decode_event`) and when it is encoded
    (:func:`encode_event`, which every append calls). Building one in Python
    checks the times only (timezone-aware, held in UTC, clips in order), so
    an invalid event can exist but can never be encoded, signed or appended.
    ``consent`` says whether the owner consented; ``derived_from`` is the
    SHA-256 of the original footage when a clip or redaction is handled.
    """

    event_id: EventId
    occurred_at: Time
    camera_id: Id
    action: Action
    actor: Party
    owner_id: Id | None = None
    footage: tuple[Clip, ...] = ()
    recipient: Party | None = None
    legal_basis: LegalBasis | None = None
    legal_reference: Other | None = None
    justification: Text | None = None
    consent: bool | None = None
    owner_notified_at: Time | None = None
    notification_deferred_until: Time | None = None
    purpose: Line | None = None
    derived_from: Digest | None = None
    extensions: Extensions = {}  # msgspec copies a mutable default per instance

    def __post_init__(self) -> None:
        """Hold the times in UTC.

        Raises:
            ValidationError: naming a time field that is naive or out of range.
        """
        t: datetime | None = self.occurred_at
        if type(t) is not datetime or t.tzinfo is not UTC:
            force_setattr(self, "occurred_at", _utc(t, "occurred_at"))
        t = self.owner_notified_at
        if t is not None and (type(t) is not datetime or t.tzinfo is not UTC):
            force_setattr(self, "owner_notified_at", _utc(t, "owner_notified_at"))
        t = self.notification_deferred_until
        if t is not None and (type(t) is not datetime or t.tzinfo is not UTC):
            force_setattr(
                self, "notification_deferred_until", _utc(t, "notification_deferred_until")
            )


# The same schema with the character patterns: only ever decoded to check an
# input that _check_strings cannot clear at a glance, its result thrown away.


class _StrictParty(Party, frozen=True):
    id: _SId | None = None
    organization: _SOther | None = None


class _StrictClip(Clip, frozen=True):
    clip_id: _SId


class _StrictEvent(Event, frozen=True):
    event_id: _SEventId
    camera_id: _SId
    actor: _StrictParty
    owner_id: _SId | None = None
    footage: tuple[_StrictClip, ...] = ()
    recipient: _StrictParty | None = None
    legal_reference: _SOther | None = None
    justification: _SText | None = None
    purpose: _SLine | None = None


# What a JSON text (the input, or msgspec's JSON encoding of an event) holds
# wherever one of its strings holds a character a pattern refuses: a control
# character raw or escaped (every escape starts with a backslash), DEL, and
# in UTF-8 the C1 controls, line and paragraph separators and bidirectional
# controls. A quote or backslash in a string is escaped too, a false alarm
# that only costs the slower check.
_SUSPECT = re.compile(rb"[\x00-\x1f\x7f\\]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")
# Every byte but those that can begin such a match: deleting them with
# bytes.translate is a C loop, many times faster than the search itself.
_ORDINARY = bytes(b for b in range(0x20, 0x100) if b not in b"\x7f\\\xc2\xe2")
_ORDINARY_BUT_COLON = _ORDINARY.replace(b":", b"")


def _clear(text: bytes, left: bytes | None = None, event: Event | None = None) -> bool:
    # Whether no string of this JSON text holds a refused character. ``left``:
    # what translate left of it, if the caller has it already (colons taken
    # out). ``event``: the event the text is of, to clear the common newline
    # or tab in its justification without encoding it again.
    if left is None:
        left = text.translate(None, _ORDINARY)
    if not left:
        return True
    if event is not None and not left.strip(b"\\") and not event.extensions:
        # Only backslashes: every escape's, one each for \n and \t. If each
        # is a newline or tab of the justification (which JSON can only have
        # written escaped), no other string holds an escaped character.
        j = event.justification
        if j is not None and len(left) == j.count("\n") + j.count("\t"):
            return True
    if left.strip(b"\xc2\xe2"):  # an escape, a control character or DEL
        return False
    return _SUSPECT.search(text) is None  # lead bytes of UTF-8 characters: look closer


def _check_strings(event: Event, clear: bool, decoder: _AnyDecoder, data: bytes) -> bool:
    """Check which characters ``event``'s strings hold; say whether extensions need it too.

    ``clear`` says whether :func:`_clear` cleared the JSON the event was read
    from, or its own JSON encoding: then every field is clear. Otherwise (a
    newline in the justification, a quote, a character outside ASCII) the
    event is encoded again without its justification and extensions, which
    may hold newlines and tabs, and that is scanned; the justification is
    checked on its own. Only what this cannot clear is decoded again, from
    ``data`` with ``decoder``'s strict types, which raise naming the field.
    """
    if not clear:
        rest = _JSON_ENCODER.encode(
            msgspec.structs.replace(event, justification=None, extensions={})
        )
        j = event.justification
        if not _clear(rest) or (j is not None and not j.isprintable() and _BAD_TEXT.search(j)):
            _strict_check(decoder, data)
    eid = event.event_id
    if " " in eid or not eid.isascii():  # event_id: printable ASCII but space
        _strict_check(decoder, data)
    return not clear


# ---------------------------------------------------------------------------
# Errors: msgspec's messages, as ValidationErrors naming the path.

_AT = re.compile(r"(.*) - at `(\$[^`]*)`\Z", re.DOTALL)
_KEY_AT = re.compile(r"(.*) - at `key` in `(\$[^`]*)`\Z", re.DOTALL)
_NAMED = re.compile(r"Object (contains unknown|missing required) field `([^`]*)`\Z")
_OWN = re.compile(r"([a-z_]+): (.*)\Z", re.DOTALL)


def _validation_error(err: msgspec.ValidationError) -> ValidationError:
    # "Invalid enum value 'x' - at `$.actor.kind`" -> ValidationError("$.actor.kind", ...).
    text = str(err)
    m = _AT.fullmatch(text) or _KEY_AT.fullmatch(text)
    path, message = (m.group(2), m.group(1)) if m else ("$", text)
    named = _NAMED.fullmatch(message)
    if named is not None:
        path = f"{path}.{named.group(2)}"
        message = "unknown field" if named.group(1) == "contains unknown" else "is required"
    else:
        own = _OWN.fullmatch(message)
        if own is not None:
            # Raised by a __post_init__ (ValidationError is a ValueError), which
            # named its field: msgspec gave the path of its struct.
            path, message = f"{path}.{own.group(1)}", own.group(2)
    if "matching regex" in message:
        message = (
            "must be 1 to 256 printable ASCII characters without spaces"
            if path.endswith(".event_id")
            else "must not contain control characters, separators or bidirectional controls"
        )
    if message[:1].isupper():
        message = message[0].lower() + message[1:]
    return ValidationError(path, message)


# ---------------------------------------------------------------------------
# Decoders and encoders, built once (each is safe to share between threads).


def _json_dec_hook(kind: type, obj: object) -> object:
    # Digests are 64 lowercase hex digits in the JSON form; fromhex alone
    # would also take upper case and spaces.
    if kind is Digest:
        if type(obj) is str and len(obj) == 64:
            try:
                digest = Digest.fromhex(obj)
            except ValueError:
                pass
            else:
                if digest.hex() == obj:
                    return digest
        raise ValueError("must be 64 lowercase hexadecimal digits")
    raise NotImplementedError(kind)


def _msgpack_dec_hook(kind: type, obj: object) -> object:
    if kind is Digest:
        if type(obj) is bytes and len(obj) == 32:
            return Digest(obj)
        raise ValueError("must be a 32-byte bin")
    raise NotImplementedError(kind)


_JSON_DECODER = msgspec.json.Decoder(Event, dec_hook=_json_dec_hook)
_STRICT_JSON_DECODER = msgspec.json.Decoder(_StrictEvent, dec_hook=_json_dec_hook)
_MSGPACK_DECODER = msgspec.msgpack.Decoder(Event, dec_hook=_msgpack_dec_hook)
_STRICT_MSGPACK_DECODER = msgspec.msgpack.Decoder(_StrictEvent, dec_hook=_msgpack_dec_hook)
# A Digest is the one type msgspec does not encode itself. The hooks are C
# methods, not Python functions, because they run for every hash encoded;
# they refuse anything that is not bytes. order="deterministic" sorts the
# keys of maps (``extensions``); struct fields keep their declared order.
_ENCODER = msgspec.msgpack.Encoder(enc_hook=bytes.__bytes__, order="deterministic")
_JSON_ENCODER = msgspec.json.Encoder(enc_hook=bytes.hex)


_FIXMAP_HEADERS = [bytes((0x80 | n,)) for n in range(16)]


def _encode(event: Event) -> bytes:
    # msgspec writes the map header of a struct with 16 or more fields as a
    # map16 before it knows how many absent ones it will omit; canonical
    # MessagePack takes the smallest header, a fixmap up to 15 entries.
    data = _ENCODER.encode(event)
    if data[0] == 0xDE and data[1] == 0 and data[2] < 16:
        return _FIXMAP_HEADERS[data[2]] + data[3:]
    return data


_AnyDecoder: TypeAlias = "msgspec.json.Decoder[Any] | msgspec.msgpack.Decoder[Any]"


def _strict_check(decoder: _AnyDecoder, data: bytes) -> None:
    try:
        decoder.decode(data)
    except msgspec.ValidationError as err:
        raise _validation_error(err) from None


_PARTY_DECODER = msgspec.msgpack.Decoder(_StrictParty)


def check_party(party: Party) -> Party:
    """Return ``party`` once every field is checked (building a :class:`Party` checks none).

    Raises:
        ValidationError: naming the bad field (``$.organization``).
    """
    try:
        data = _ENCODER.encode(party)
    except (TypeError, ValueError) as err:
        raise ValidationError("$", f"cannot be encoded: {err}") from err
    _strict_check(_PARTY_DECODER, data)
    return party


def refuse_ext(code: int, data: bytes) -> object:
    """The msgpack ``ext_hook`` of the strict decoders outside events: no extension types.

    Raises:
        ValueError: always (msgpack reports it as malformed input).
    """
    raise ValueError(f"msgpack extension type {code} is not allowed")


# ---------------------------------------------------------------------------
# Times.


def format_time(value: datetime) -> str:
    """Render a timezone-aware datetime in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.

    The fraction is written, with exactly six digits, only when it is not zero,
    so each instant has one form.

    Raises:
        ValidationError: if ``value`` is not a timezone-aware datetime.
    """
    return _utc(value, "time").replace(tzinfo=None).isoformat() + "Z"


_TIME_DECODER = msgspec.json.Decoder(Time)


def parse_time(text: object, name: str = "time") -> datetime:
    """Parse an RFC 3339 time with a zone (``Z`` or ``±hh:mm``) into a UTC datetime.

    RFC 3339's lower-case ``t`` and ``z`` and a space for ``T`` are accepted.
    Fraction digits beyond the sixth are rounded to the nearest microsecond,
    as the event decoders do.

    Raises:
        ValidationError: naming ``name`` if ``text`` is not such a time (a time
            without a zone included) or is out of range.
    """
    if not isinstance(text, str):
        raise ValidationError(name, f"must be an RFC 3339 time string, not {type(text).__name__}")
    try:
        parsed = _TIME_DECODER.decode(_JSON_ENCODER.encode(str.__str__(text)))
    except msgspec.ValidationError as err:
        raise ValidationError(name, _validation_error(err).message) from err
    return _utc(parsed, name)


def timestamp_micros(value: datetime) -> int:
    """Return ``value`` as whole microseconds since the Unix epoch (an envelope's logged_at).

    Raises:
        MalformedError: if ``value`` is naive or before the epoch.
    """
    utc = _utc(value, "logged_at")
    micros = (utc - _EPOCH) // _ONE_MICROSECOND
    if micros < 0:
        raise MalformedError("logged_at must not be before 1970-01-01T00:00:00Z")
    return micros


# ---------------------------------------------------------------------------
# Canonical encoding.


def _size_checked(data: bytes) -> bytes:
    if len(data) > MAX_EVENT_SIZE:
        raise ValidationError(
            "$",
            f"canonical encoding is {len(data)} bytes, more than {MAX_EVENT_SIZE}"
            " (a record must fit a 65,535-byte tlog-tiles entry)",
        )
    return data


def _decode_valid(data: bytes) -> Event:
    # Decode and check an encoding that is well-formed MessagePack.
    try:
        event: Event = _MSGPACK_DECODER.decode(data)
    except msgspec.ValidationError as err:
        raise _validation_error(err) from None
    clear = _clear(_JSON_ENCODER.encode(event), None, event)
    suspect = _check_strings(event, clear, _STRICT_MSGPACK_DECODER, data)
    if event.extensions:
        _check_extensions(event.extensions, chars=suspect)
    return event


def encode_event(event: Event) -> bytes:
    """Validate ``event`` and return its canonical encoding.

    The encoding is MessagePack (str and bin kept apart) of one map whose keys
    are the field names in the order :class:`Event` declares them, likewise
    for ``actor``, ``recipient`` (``kind, id, organization``) and each clip
    of ``footage`` (``clip_id, sha256, start, end``), with absent fields
    (None, empty ``footage``, empty ``extensions``) omitted. The keys of
    ``extensions`` maps, at every level, are in UTF-8 byte order. Times are
    MessagePack timestamps (extension type -1, in the smallest of its three
    forms), hashes 32-byte bins, enums their string values, integers and
    strings in their shortest forms. New optional fields may be added at the
    end later: an old event, which lacks them, keeps its encoding.

    The encoding is decoded again to check every field, so an event built in
    Python with a bad field is refused here, as one read from JSON is.

    Raises:
        MalformedError: if ``event`` is not an :class:`Event`.
        ValidationError: (a MalformedError) naming the first bad field's path.
    """
    if not isinstance(event, Event):
        raise MalformedError(f"expected an Event, not {type(event).__name__}")
    try:
        data = _encode(event)
    except (TypeError, ValueError, OverflowError) as err:
        # A value msgspec cannot encode at all (a float, a lone surrogate, ...).
        raise ValidationError("$", f"cannot be encoded: {err}") from err
    _decode_valid(data)
    return _size_checked(data)


def decode_event(data: bytes) -> Event:
    """Decode a canonical event encoding (see :func:`encode_event`), strictly.

    The event is decoded with full validation, then re-encoded: anything but
    the one canonical encoding of that event (key order, integer and string
    widths, timestamp forms, nil for an absent field, duplicate keys,
    trailing bytes) is refused.

    Raises:
        MalformedError: if ``data`` is too large, is not MessagePack, or is not canonical.
        ValidationError: (a MalformedError) if the decoded event is invalid.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"event encoding must be bytes, not {type(data).__name__}")
    if len(data) > MAX_EVENT_SIZE:
        raise MalformedError(f"event encoding is larger than {MAX_EVENT_SIZE} bytes")
    try:
        event = _decode_valid(data)
    except msgspec.DecodeError as err:
        raise MalformedError(f"event encoding is not valid MessagePack: {err}") from None
    except RecursionError:
        raise MalformedError("event encoding nests too deeply") from None
    if _encode(event) != data:
        raise MalformedError("event encoding is not canonical")
    return event
