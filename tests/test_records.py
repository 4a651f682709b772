"""Tests for records: event validation, the JSON form, canonical encoding, envelopes."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from disclosure_ledger._core import records
from disclosure_ledger._core.notes import KEY_TYPE_COSIGNATURE, Signer, Verifier
from disclosure_ledger._core.records import (
    CHAIN_PREFIX,
    GENESIS_PREV,
    HEADER_SIZE,
    MAX_EVENT_SIZE,
    MAX_EXTENSION_DEPTH,
    RECORD_SIG_PREFIX,
    AccessClass,
    Action,
    ActorKind,
    Clip,
    Envelope,
    Event,
    LegalBasis,
    Party,
    access_class,
    chain_hash,
    decode_event,
    encode_content,
    encode_event,
    event_from_json,
    event_from_json_text,
    event_to_json,
    format_time,
    is_disclosure,
    is_without_consent,
    make_envelope,
    parse_envelope,
    parse_time,
    sign_content,
    signing_message,
    timestamp_micros,
    verify_envelope,
)
from disclosure_ledger.errors import (
    BadSignatureError,
    KeyFormatError,
    MalformedError,
    UntrustedKeyError,
    ValidationError,
)

ORIGIN = "example.com/ledger/owner-42"
WRITER = Signer("vendor-writer", bytes(range(32)))
OTHER = Signer("other-writer", bytes(range(1, 33)))
PROPS = settings(max_examples=120, deadline=None)

EXAMPLE: dict[str, Any] = {
    "event_id": "4f0c1",
    "occurred_at": "2026-11-27T10:15:00Z",
    "camera_id": "cam-7",
    "owner_id": "owner-42",
    "action": "release",
    "actor": {"kind": "vendor_employee", "id": "emp-19", "organization": "Vendor Inc"},
    "recipient": {"kind": "law_enforcement", "organization": "Springfield PD"},
    "legal_basis": "emergency",
    "legal_reference": "case 26-1193",
    "justification": "Imminent threat reported by caller.\nSupervisor approved.",
    "footage": [
        {
            "clip_id": "c-88",
            "sha256": "ab" * 32,
            "start": "2026-11-27T09:00:00Z",
            "end": "2026-11-27T09:05:00Z",
        }
    ],
}


def example(**changes: Any) -> dict[str, Any]:
    obj = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


# ---------------------------------------------------------------------------
# Strategies.

_text_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Cf", "Zl", "Zp"))
ids = st.text(_text_chars, min_size=1, max_size=40)
event_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64)
texts = st.text(st.one_of(_text_chars, st.sampled_from("\n\t")), min_size=1, max_size=200)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=offsets
)
hashes = st.binary(min_size=32, max_size=32)
parties = st.builds(
    Party,
    kind=st.sampled_from(ActorKind),
    id=st.none() | ids,
    organization=st.none() | ids,
)


@st.composite
def clips(draw: st.DrawFn) -> Clip:
    start = draw(times)
    end = start + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2)))
    return Clip(draw(ids), draw(hashes), start, end)


int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
json_values = st.recursive(
    st.none() | st.booleans() | int64 | st.text(_text_chars, max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ids, inner, max_size=3),
    max_leaves=8,
)
extensions = st.dictionaries(ids, json_values, max_size=4)

events = st.builds(
    Event,
    event_id=event_ids,
    occurred_at=times,
    camera_id=ids,
    action=st.sampled_from(Action),
    actor=parties,
    owner_id=st.none() | ids,
    footage=st.lists(clips(), max_size=3).map(tuple),
    recipient=st.none() | parties,
    legal_basis=st.none() | st.sampled_from(LegalBasis),
    legal_reference=st.none() | ids,
    justification=st.none() | texts,
    consent=st.none() | st.booleans(),
    owner_notified_at=st.none() | times,
    notification_deferred_until=st.none() | times,
    purpose=st.none() | ids,
    derived_from=st.none() | hashes,
    extensions=extensions,
)


def _envelope(event: Event, seq: int = 3, signer: Signer = WRITER) -> Envelope:
    prev = hashlib.sha256(b"previous").digest()
    return make_envelope(ORIGIN, signer, seq, prev, 1_795_000_000_000_000, encode_event(event))


EXAMPLE_EVENT = event_from_json(EXAMPLE)


# ---------------------------------------------------------------------------
# Round trips.


@PROPS
@given(events)
def test_json_round_trip(event: Event) -> None:
    # JSON -> event -> MessagePack -> event -> JSON is the identity.
    as_json = event_to_json(event)
    parsed = event_from_json(as_json)
    assert parsed == event
    assert encode_event(parsed) == encode_event(event)
    # And through text, as the CLI reads it, with the encoding it returns.
    from_text, data = records.parse_json_line(json.dumps(as_json))
    assert from_text == event
    assert data == encode_event(event)
    again = decode_event(data)
    assert event_to_json(again) == as_json
    # The compact form takes the fast duplicate check; it must agree.
    assert event_from_json_text(json.dumps(as_json, separators=(",", ":"))) == event


@PROPS
@given(events)
def test_encoding_round_trip(event: Event) -> None:
    data = encode_event(event)
    decoded = decode_event(data)
    assert decoded == event
    assert encode_event(decoded) == data


# ---------------------------------------------------------------------------
# The independent cross-check: msgspec's bytes are msgpack's of the canonical value.

_EVENT_ORDER = [f.name for f in msgspec.structs.fields(Event)]


def _sorted_map(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_map(value[k]) for k in sorted(value, key=lambda k: k.encode())}
    if isinstance(value, list | tuple):
        return [_sorted_map(v) for v in value]
    return value


def _party_value(party: Party) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": str(party.kind)}
    if party.id is not None:
        out["id"] = party.id
    if party.organization is not None:
        out["organization"] = party.organization
    return out


def _canonical_value(event: Event) -> dict[str, Any]:
    """The canonical map of ``event``, built without msgspec, in the documented order."""
    out: dict[str, Any] = {}
    for name in _EVENT_ORDER:
        value = getattr(event, name)
        if value is None or value in ((), {}):
            continue
        if name in ("actor", "recipient"):
            value = _party_value(value)
        elif name == "footage":
            value = [
                {
                    "clip_id": c.clip_id,
                    "sha256": bytes(c.sha256),
                    "start": c.start.astimezone(UTC),
                    "end": c.end.astimezone(UTC),
                }
                for c in value
            ]
        elif name == "extensions":
            value = _sorted_map(value)
        elif isinstance(value, datetime):
            value = value.astimezone(UTC)
        elif isinstance(value, bytes):
            value = bytes(value)
        elif isinstance(value, Action | LegalBasis):
            value = str(value)
        out[name] = value
    return out


def _packb(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True, datetime=True)
    return data


@PROPS
@given(events)
def test_msgspec_encoding_equals_msgpack_of_the_canonical_value(event: Event) -> None:
    assert encode_event(event) == _packb(_canonical_value(event))


def _widen_first_str(data: bytes, text: str) -> bytes:
    # The first copy of a string, with a longer header than it needs.
    raw = text.encode()
    short = _packb(text)
    assert short in data
    size = len(raw)
    header = b"\xda" + size.to_bytes(2, "big") if size < 256 else b"\xdb" + size.to_bytes(4, "big")
    return data.replace(short, header + raw, 1)


def _non_canonical_forms(event: Event) -> dict[str, bytes]:
    """Encodings of ``event`` that are not its canonical one, each of a different kind."""
    value = _canonical_value(event)
    canonical = _packb(value)
    items = list(value.items())
    n = len(items)
    body = canonical[1:]  # after a fixmap header: an event has at most 17 fields
    forms = {
        "reordered": _packb(dict(reversed(items))),
        "wide-event-id": _widen_first_str(canonical, event.event_id),
        "trailing-nil": canonical + b"\xc0",
        "duplicate-key": bytes([0x80 | (n + 1)]) + body + _packb("event_id") + _packb("x"),
    }
    if n < 16:
        forms["map16-header"] = b"\xde" + n.to_bytes(2, "big") + body
    if "consent" not in value:  # an absent field written as nil
        pos = _EVENT_ORDER.index("consent")
        before = [(k, v) for k, v in items if _EVENT_ORDER.index(k) < pos]
        after = [(k, v) for k, v in items if _EVENT_ORDER.index(k) > pos]
        forms["explicit-nil"] = _packb(dict([*before, ("consent", None), *after]))
    # The time as a 96-bit timestamp, a form msgpack allows for any instant.
    occurred = value["occurred_at"]
    micros = (occurred - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    secs, frac = divmod(micros, 1_000_000)
    ts96 = b"\xc7\x0c\xff" + (frac * 1000).to_bytes(4, "big") + secs.to_bytes(8, "big", signed=True)
    key = _packb("occurred_at")
    if _packb(occurred) != ts96:
        forms["timestamp96"] = canonical.replace(key + _packb(occurred), key + ts96, 1)
    return forms


@PROPS
@given(events, st.data())
def test_decode_refuses_every_non_canonical_form(event: Event, data: st.DataObject) -> None:
    forms = _non_canonical_forms(event)
    kind = data.draw(st.sampled_from(sorted(forms)))
    encoded = forms[kind]
    assert encoded != encode_event(event)
    with pytest.raises(MalformedError):
        decode_event(encoded)


@PROPS
@given(events, st.integers(min_value=0, max_value=(1 << 64) - 1), hashes, int64)
def test_envelope_round_trip(event: Event, seq: int, prev: bytes, logged_at: int) -> None:
    logged_at = abs(logged_at) % (records.MAX_LOGGED_AT + 1)
    env = make_envelope(ORIGIN, WRITER, seq, prev, logged_at, encode_event(event))
    built = records.Envelope(
        records.ENVELOPE_VERSION,
        seq,
        prev,
        logged_at,
        WRITER.key_id,
        env.event_bytes,
        env.signature,
    )
    assert (env, env.content, env.leaf) == (built, built.content, built.leaf)
    parsed = parse_envelope(env.leaf)
    assert parsed == env
    assert parsed.leaf == env.leaf
    assert parsed.event() == event
    assert verify_envelope(ORIGIN, parsed, [WRITER.verifier]) == WRITER.verifier


_FLIP_ENV = _envelope(EXAMPLE_EVENT)


@PROPS
@given(st.integers(min_value=0, max_value=len(_FLIP_ENV.leaf) * 8 - 1))
def test_any_bit_flip_fails_parse_or_verify(bit: int) -> None:
    leaf = bytearray(_FLIP_ENV.leaf)
    leaf[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((MalformedError, BadSignatureError, UntrustedKeyError)):
        verify_envelope(ORIGIN, parse_envelope(bytes(leaf)), [WRITER.verifier, OTHER.verifier])


@PROPS
@given(events, st.data())
def test_any_bit_flip_of_a_signed_record_fails(event: Event, data: st.DataObject) -> None:
    leaf = bytearray(_envelope(event).leaf)
    bit = data.draw(st.integers(min_value=0, max_value=len(leaf) * 8 - 1))
    leaf[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((MalformedError, BadSignatureError, UntrustedKeyError)):
        verify_envelope(ORIGIN, parse_envelope(bytes(leaf)), [WRITER.verifier, OTHER.verifier])


def _keys(pairs: list[tuple[Any, Any]]) -> list[Any]:
    return [k for k, _ in pairs]


def _check_sorted(value: Any) -> None:
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value):  # a map's pairs
        keys = [k.encode() for k in _keys(value)]
        assert keys == sorted(keys)
        for _, v in value:
            _check_sorted(v)
    elif isinstance(value, list):
        for v in value:
            _check_sorted(v)


@PROPS
@given(events)
def test_encoding_keys_in_declared_order_and_extension_keys_sorted(event: Event) -> None:
    top = msgpack.unpackb(encode_event(event), object_pairs_hook=list, timestamp=3)
    assert _keys(top) == [k for k in _EVENT_ORDER if k in _keys(top)]
    fields = dict(top)
    for name in ("actor", "recipient"):
        if name in fields:
            keys = _keys(fields[name])
            assert keys == [k for k in ("kind", "id", "organization") if k in keys]
    for clip in fields.get("footage", []):
        assert _keys(clip) == ["clip_id", "sha256", "start", "end"]
    _check_sorted(fields.get("extensions", []))


def test_example_input() -> None:
    ev = event_from_json_text(json.dumps(EXAMPLE))
    assert ev.action is Action.RELEASE
    assert ev.actor == Party(ActorKind.VENDOR_EMPLOYEE, "emp-19", "Vendor Inc")
    assert ev.recipient == Party(ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
    assert ev.legal_basis is LegalBasis.EMERGENCY
    assert ev.footage[0].sha256 == bytes([0xAB]) * 32
    assert ev.occurred_at == datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
    assert event_to_json(ev) == EXAMPLE


def test_encoding_is_the_documented_map() -> None:
    decoded = msgpack.unpackb(encode_event(EXAMPLE_EVENT), raw=False, timestamp=3)
    assert list(decoded) == [
        "event_id",
        "occurred_at",
        "camera_id",
        "action",
        "actor",
        "owner_id",
        "footage",
        "recipient",
        "legal_basis",
        "legal_reference",
        "justification",
    ]
    assert decoded["footage"][0]["sha256"] == bytes([0xAB]) * 32
    assert decoded["occurred_at"] == datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
    assert decoded["actor"] == {
        "kind": "vendor_employee",
        "id": "emp-19",
        "organization": "Vendor Inc",
    }
    assert list(decoded["footage"][0]) == ["clip_id", "sha256", "start", "end"]
    # A timestamp in its 32-bit form: fixext 4, type -1, seconds.
    ts32 = b"\xd6\xff" + (1795774500).to_bytes(4, "big")
    assert b"\xab" + b"occurred_at" + ts32 in encode_event(EXAMPLE_EVENT)


def test_times_normalised_to_utc_and_rounded() -> None:
    ev = event_from_json(example(occurred_at="2026-11-27T11:15:00.123456789+01:00", footage=[]))
    assert ev.occurred_at == datetime(2026, 11, 27, 10, 15, 0, 123457, tzinfo=UTC)
    assert ev.occurred_at.tzinfo is UTC
    assert event_to_json(ev)["occurred_at"] == "2026-11-27T10:15:00.123457Z"
    assert "footage" not in event_to_json(ev)
    py = Event(
        "e1",
        datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
        "cam",
        Action.VIEW,
        Party(ActorKind.OWNER),
    )
    assert py.occurred_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert py.occurred_at.tzinfo is UTC
    assert format_time(py.occurred_at) == "2026-01-01T00:00:00Z"
    assert parse_time("2026-01-01T00:00:00.5-00:30") == datetime(2026, 1, 1, 0, 30, 0, 500000, UTC)
    with pytest.raises(ValidationError) as info:
        Event("e1", datetime(2026, 1, 1), "cam", Action.VIEW, Party(ActorKind.OWNER))
    assert info.value.field == "occurred_at"
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(ValidationError, match="out of range"):
        Event("e1", late, "cam", Action.VIEW, Party(ActorKind.OWNER))


def test_python_construction_is_checked_when_encoded() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    ev = Event(
        event_id="e1",
        occurred_at=t,
        camera_id="cam",
        action="share",  # type: ignore[arg-type]  # a plain str is encoded as the member is
        actor=Party("owner"),  # type: ignore[arg-type]
        footage=(Clip("c", bytes(32), t, t),),
        extensions={"b": [1, {"y": None}], "a": True},
    )
    decoded = decode_event(encode_event(ev))
    assert decoded.action is Action.SHARE
    assert decoded.actor.kind is ActorKind.OWNER
    assert list(decoded.extensions) == ["a", "b"]  # sorted in the encoding
    assert decoded.extensions == {"a": True, "b": [1, {"y": None}]}
    assert decoded == ev
    assert hash(decoded.actor) == hash(Party(ActorKind.OWNER))
    bad: list[tuple[dict[str, Any], str]] = [
        ({"action": "steal"}, "$.action"),
        ({"actor": Party("robot")}, "$.actor.kind"),  # type: ignore[arg-type]
        ({"camera_id": "c\u202e"}, "$.camera_id"),
        ({"camera_id": ""}, "$.camera_id"),
        ({"event_id": "a b"}, "$.event_id"),
        ({"owner_id": 7}, "$.owner_id"),
        ({"consent": 1}, "$.consent"),
        ({"derived_from": bytes(33)}, "$.derived_from"),
        ({"footage": (Clip("c\x00", bytes(32), t, t),)}, "$.footage[0].clip_id"),
        ({"extensions": {"k": 1.5}}, "$.extensions.k"),
        ({"extensions": {"k": b"raw"}}, "$.extensions.k"),
        ({"extensions": {1: "x"}}, "$"),
        ({"extensions": {"k": object()}}, "$"),
        ({"extensions": {"k": "\ud800"}}, "$"),
    ]
    for change, field in bad:
        with pytest.raises(ValidationError) as info:
            encode_event(msgspec.structs.replace(ev, **change))
        assert info.value.field == field, change


def test_classification() -> None:
    def ev(**changes: Any) -> Event:
        return event_from_json(example(**changes))

    assert is_disclosure(EXAMPLE_EVENT)
    assert is_without_consent(EXAMPLE_EVENT)  # emergency
    consented = ev(legal_basis="owner_consent")
    assert is_disclosure(consented)
    assert not is_without_consent(consented)
    assert is_without_consent(ev(legal_basis="owner_consent", consent=False))
    no_basis = example(consent=True)
    del no_basis["legal_basis"]
    assert not is_without_consent(event_from_json(no_basis))
    del no_basis["consent"]
    assert is_without_consent(event_from_json(no_basis))
    # A view or stream with an outside recipient discloses footage as a release does.
    assert is_disclosure(ev(action="view"))
    assert is_disclosure(ev(action="stream"))
    assert access_class(ev(action="view")) is AccessClass.OUTSIDE
    # The police acting themselves, with no recipient, is a disclosure too.
    police = example(action="stream", actor={"kind": "law_enforcement", "id": "officer-3"})
    del police["recipient"]
    assert is_disclosure(event_from_json(police))
    assert is_without_consent(event_from_json(police))
    # Vendor staff handing footage to the owner: an access by staff, not a disclosure.
    to_owner = ev(recipient={"kind": "owner", "id": "owner-42"})
    assert not is_disclosure(to_owner)
    assert access_class(to_owner) is AccessClass.VENDOR_STAFF
    system = example(action="view", actor={"kind": "vendor_system", "id": "motion-ai"})
    del system["recipient"]
    assert access_class(event_from_json(system)) is AccessClass.VENDOR_SYSTEM
    # The owner sharing with a neighbour is a disclosure they consented to by making it.
    shared = example(
        action="share",
        actor={"kind": "owner", "id": "owner-42"},
        recipient={"kind": "third_party", "id": "neighbour"},
    )
    del shared["legal_basis"]
    assert is_disclosure(event_from_json(shared))
    assert not is_without_consent(event_from_json(shared))
    assert is_without_consent(event_from_json({**shared, "consent": False}))
    own_download = example(action="download", actor={"kind": "owner", "id": "owner-42"})
    del own_download["recipient"]
    assert not is_disclosure(event_from_json(own_download))
    assert access_class(event_from_json(own_download)) is None
    assert not is_without_consent(event_from_json(own_download))


# ---------------------------------------------------------------------------
# Validation: every rule names its field.


def _field_of(obj: object) -> str:
    """The field an invalid event is refused for, the same by every reader."""
    with pytest.raises(ValidationError) as info:
        event_from_json(obj)
    field = info.value.field
    if isinstance(obj, dict):
        for text in (json.dumps(obj), json.dumps(obj, separators=(",", ":"))):
            with pytest.raises(ValidationError) as info:
                event_from_json_text(text)
            assert info.value.field == field, text
    return field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": None}, "$.event_id"),
        ({"occurred_at": None}, "$.occurred_at"),
        ({"camera_id": None}, "$.camera_id"),
        ({"action": None}, "$.action"),
        ({"actor": None}, "$.actor"),
        ({"action": "steal"}, "$.action"),
        ({"action": "Release"}, "$.action"),
        ({"legal_basis": "vibes"}, "$.legal_basis"),
        ({"actor": {"kind": "xowner"}}, "$.actor.kind"),
        ({"actor": {"id": "x"}}, "$.actor.kind"),
        ({"actor": {"kind": "owner", "name": "x"}}, "$.actor.name"),
        ({"actor": {"kind": 7}}, "$.actor.kind"),
        ({"recipient": {"kind": "owner", "id": ""}}, "$.recipient.id"),
        ({"recipient": "police"}, "$.recipient"),
        ({"occurred_at": "2026-11-27T10:15:00"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27T10:15"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27"}, "$.occurred_at"),
        ({"occurred_at": "2026-13-27T10:15:00Z"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27T10:15:60Z"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27T10:15:00+01:60"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27T10:15:00+24:00"}, "$.occurred_at"),
        ({"occurred_at": "2026-11-27T24:00:00Z"}, "$.occurred_at"),
        ({"occurred_at": "٢٠٢٦-11-27T10:15:00Z"}, "$.occurred_at"),
        ({"occurred_at": 1795000000}, "$.occurred_at"),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "$.occurred_at"),
        ({"owner_notified_at": "2026-11-27"}, "$.owner_notified_at"),
        ({"event_id": "has space"}, "$.event_id"),
        ({"event_id": "é"}, "$.event_id"),
        ({"event_id": "x" * 257}, "$.event_id"),
        ({"event_id": ""}, "$.event_id"),
        ({"event_id": 7}, "$.event_id"),
        ({"camera_id": "cam\x00"}, "$.camera_id"),
        ({"camera_id": "cam\u202e"}, "$.camera_id"),
        ({"camera_id": "cam\x85"}, "$.camera_id"),
        ({"camera_id": "cam\x7f"}, "$.camera_id"),
        ({"camera_id": "cam\u2028"}, "$.camera_id"),
        ({"camera_id": ""}, "$.camera_id"),
        ({"camera_id": "c" * 257}, "$.camera_id"),
        ({"owner_id": ["owner"]}, "$.owner_id"),
        ({"legal_reference": "r" * 1025}, "$.legal_reference"),
        ({"legal_reference": "line\nbreak"}, "$.legal_reference"),
        ({"justification": "j" * 8193}, "$.justification"),
        ({"justification": "bell\x07"}, "$.justification"),
        ({"purpose": "tab\there"}, "$.purpose"),
        ({"consent": "yes"}, "$.consent"),
        ({"consent": 1}, "$.consent"),
        ({"derived_from": "AB" * 32}, "$.derived_from"),
        ({"derived_from": "ab" * 31 + "a"}, "$.derived_from"),
        ({"derived_from": "ab" * 33}, "$.derived_from"),
        ({"derived_from": " " + "ab" * 31 + "a"}, "$.derived_from"),
        ({"footage": {"clip_id": "c"}}, "$.footage"),
        ({"footage": ["c-88"]}, "$.footage[0]"),
        ({"extensions": [1]}, "$.extensions"),
        ({"extensions": {"ratio": 0.5}}, "$.extensions.ratio"),
        ({"extensions": {"a": {"b": [1, 2.0]}}}, "$.extensions.a.b[1]"),
        ({"extensions": {"big": 1 << 63}}, "$.extensions.big"),
        ({"extensions": {"small": -(1 << 63) - 1}}, "$.extensions.small"),
        ({"extensions": {"": 1}}, "$.extensions"),
        ({"extensions": {"k" * 257: 1}}, "$.extensions"),
        ({"extensions": {"k": "nul\x00"}}, "$.extensions.k"),
        ({"extensions": {"two words": {"k": "x\u202e"}}}, '$.extensions["two words"].k'),
        ({"extensions": {"long": "x" * 8193}}, "$.extensions.long"),
        ({"colour": "red"}, "$.colour"),
    ],
)
def test_validation_names_field(changes: dict[str, Any], field: str) -> None:
    obj = copy.deepcopy(EXAMPLE)
    for key, value in changes.items():
        if value is None:
            del obj[key]
        else:
            obj[key] = value
    assert _field_of(obj) == field


def test_the_message_says_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match=r"^\$\.actor\.kind: invalid enum value 'xowner'$"):
        event_from_json_text(json.dumps(example(actor={"kind": "xowner"})))
    with pytest.raises(ValidationError, match=r"^\$\.colour: unknown field$"):
        event_from_json(example(colour="red"))
    with pytest.raises(ValidationError, match=r"^\$\.camera_id: is required$"):
        event_from_json(example(camera_id=None))
    with pytest.raises(ValidationError, match="without spaces"):
        event_from_json(example(event_id="a b"))
    with pytest.raises(ValidationError, match="control characters"):
        event_from_json(example(camera_id="a\u202eb"))
    with pytest.raises(ValidationError, match="timezone"):
        event_from_json(example(occurred_at="2026-11-27T10:15:00"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # RFC 3339 allows lower case t and z, and a space for T (section 5.6).
        ("2026-11-27t10:15:00z", datetime(2026, 11, 27, 10, 15, tzinfo=UTC)),
        ("2026-11-27 10:15:00Z", datetime(2026, 11, 27, 10, 15, tzinfo=UTC)),
        ("2026-11-27T11:15:00+01:00", datetime(2026, 11, 27, 10, 15, tzinfo=UTC)),
        ("2026-11-27T10:15:00-00:30", datetime(2026, 11, 27, 10, 45, tzinfo=UTC)),
        # Fractions beyond microseconds are rounded to the nearest one.
        ("2026-11-27T10:15:00.1234564Z", datetime(2026, 11, 27, 10, 15, 0, 123456, UTC)),
        ("2026-11-27T10:15:00.1234566Z", datetime(2026, 11, 27, 10, 15, 0, 123457, UTC)),
        ("2026-11-27T10:15:00.9999996Z", datetime(2026, 11, 27, 10, 15, 1, tzinfo=UTC)),
        ("2026-11-27T10:15:00.5Z", datetime(2026, 11, 27, 10, 15, 0, 500000, UTC)),
    ],
)
def test_accepted_time_forms(text: str, expected: datetime) -> None:
    ev = event_from_json(example(occurred_at=text, footage=[]))
    assert ev.occurred_at == expected
    assert ev.occurred_at.tzinfo is UTC
    assert parse_time(text) == expected


def _clip(**changes: Any) -> dict[str, Any]:
    clip = dict(EXAMPLE["footage"][0])
    clip.update(changes)
    return {k: v for k, v in clip.items() if v is not None}


@pytest.mark.parametrize(
    ("clip", "field"),
    [
        (_clip(sha256="AB" * 32), "$.footage[1].sha256"),
        (_clip(sha256="ab" * 31 + "a"), "$.footage[1].sha256"),
        (_clip(sha256="zz" * 32), "$.footage[1].sha256"),
        (_clip(sha256=7), "$.footage[1].sha256"),
        (_clip(sha256=None), "$.footage[1].sha256"),
        (_clip(clip_id=None), "$.footage[1].clip_id"),
        (_clip(clip_id="bad\nid"), "$.footage[1].clip_id"),
        (_clip(start="2026-11-27T09:00:00"), "$.footage[1].start"),
        (_clip(end="2026-11-27T08:59:59Z"), "$.footage[1].end"),
        (_clip(duration=5), "$.footage[1].duration"),
    ],
)
def test_clip_validation_names_field(clip: dict[str, Any], field: str) -> None:
    obj = example(footage=[EXAMPLE["footage"][0], clip])
    assert _field_of(obj) == field


def test_end_before_start_in_python() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as info:
        Clip("c", bytes(32), t, t - timedelta(microseconds=1))
    assert info.value.field == "end"
    with pytest.raises(ValidationError) as info:
        Clip("c", bytes(32), t, datetime(2026, 1, 1))
    assert info.value.field == "end"
    # A wrong hash length is found when the event is encoded.
    short = Event(
        "e", t, "cam", Action.VIEW, Party(ActorKind.OWNER), footage=(Clip("c", bytes(31), t, t),)
    )
    with pytest.raises(ValidationError) as info:
        encode_event(short)
    assert info.value.field == "$.footage[0].sha256"


def test_float_in_extensions_has_clear_message() -> None:
    with pytest.raises(ValidationError, match="floats are not allowed"):
        event_from_json(example(extensions={"x": 1.5}))
    built = Event(
        "e",
        datetime(2026, 1, 1, tzinfo=UTC),
        "cam",
        Action.VIEW,
        Party(ActorKind.OWNER),
        extensions={"x": [float("nan")]},  # type: ignore[list-item]  # the point
    )
    with pytest.raises(ValidationError, match="floats are not allowed") as info:
        encode_event(built)
    assert info.value.field == "$.extensions.x[0]"


def test_extension_depth_cap() -> None:
    value: Any = 1
    for _ in range(MAX_EXTENSION_DEPTH):
        value = [value]
    with pytest.raises(ValidationError, match="nests more than"):
        event_from_json(example(extensions={"deep": value}))


def test_not_an_object() -> None:
    assert _field_of([EXAMPLE]) == "$"
    assert _field_of(None) == "$"
    with pytest.raises(ValidationError) as info:
        event_from_json_text(json.dumps([EXAMPLE]))
    assert info.value.field == "$"


def test_oversize_event() -> None:
    big = {f"k{i}": "x" * 8000 for i in range(9)}
    with pytest.raises(ValidationError) as info:
        event_from_json(example(extensions=big))
    assert info.value.field == "$"
    with pytest.raises(ValidationError) as info:
        encode_event(
            Event(
                "e",
                datetime(2026, 1, 1, tzinfo=UTC),
                "c",
                Action.VIEW,
                Party("owner"),
                extensions=big,
            )
        )
    assert info.value.field == "$"
    with pytest.raises(MalformedError):
        decode_event(bytes(MAX_EVENT_SIZE + 1))
    with pytest.raises(ValidationError) as info:
        event_from_json_text(json.dumps(EXAMPLE) + " " * MAX_EVENT_SIZE)
    assert info.value.field == "<json>"


def test_json_text_errors() -> None:
    text = json.dumps(EXAMPLE)
    dup = text[:-1] + ', "camera_id": "cam-8"}'
    with pytest.raises(ValidationError, match="duplicate key 'camera_id'") as info:
        event_from_json_text(dup)
    assert info.value.field == "<json>"
    nested_dup = text.replace('"kind": "vendor_employee"', '"kind": "owner", "kind": "owner"')
    with pytest.raises(ValidationError, match="duplicate key 'kind'"):
        event_from_json_text(nested_dup)
    bad_texts: list[str | bytes] = [
        "{",
        "",
        text[:-1] + ', "extensions": {"x": NaN}}',
        text[:-1] + ', "extensions": {"x": Infinity}}',
        text[:-1] + ', "extensions": {"x": -Infinity}}',
        b"\xff{}",
        "\ud800",
        '{"event_id": "\\ud800"}',
        '{"event_id": "\\udc00x"}',
        text + " x",
    ]
    for bad in bad_texts:
        with pytest.raises(ValidationError) as info:
            event_from_json_text(bad)
        assert info.value.field == "<json>", bad
    # Deep nesting is refused at the first level that is not an object.
    with pytest.raises(ValidationError) as info:
        event_from_json_text("[" * 60_000)
    assert info.value.field == "$"
    deep = text[:-1] + ', "extensions": {"d": ' + "[" * 5000 + "]" * 5000 + "}}"
    with pytest.raises(ValidationError, match="nests") as info:
        event_from_json_text(deep)
    assert info.value.field == "<json>"
    # A lone surrogate in a str is refused before it is decoded.
    with pytest.raises(ValidationError, match="surrogate"):
        event_from_json_text(text.replace("cam-7", "cam-\ud800"))
    assert event_from_json_text(text.encode()) == EXAMPLE_EVENT


def test_null_optional_fields_are_absent() -> None:
    obj = example(footage=[])
    obj["owner_id"] = None
    obj["consent"] = None
    ev = event_from_json(obj)
    assert ev.owner_id is None
    assert ev.consent is None
    assert ev.footage == ()
    assert not ev.extensions
    assert event_from_json_text(json.dumps(obj)) == ev
    # A list or map is empty when absent, never null.
    for name in ("footage", "extensions"):
        assert _field_of(example(**{name: None}) | {name: None}) == f"$.{name}"


# ---------------------------------------------------------------------------
# Canonical encoding is enforced on decode.


def _repack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def test_decode_refuses_non_canonical() -> None:
    data = encode_event(EXAMPLE_EVENT)
    plain = msgpack.unpackb(data, raw=False)
    assert _repack(plain) == data
    # Keys out of order.
    reordered = dict(reversed(list(plain.items())))
    with pytest.raises(MalformedError, match="not canonical"):
        decode_event(_repack(reordered))
    # A non-canonical time form that still parses.
    offset = dict(plain, occurred_at="2026-11-27T11:15:00+01:00")
    with pytest.raises(MalformedError, match="not canonical"):
        decode_event(_repack(offset))
    zero_fraction = dict(plain, occurred_at="2026-11-27T10:15:00.000000Z")
    with pytest.raises(MalformedError, match="not canonical"):
        decode_event(_repack(zero_fraction))
    # An explicit nil for an absent field.
    with_nil = dict(sorted({**plain, "consent": None}.items()))
    with pytest.raises(MalformedError, match="not canonical"):
        decode_event(_repack(with_nil))
    # A non-minimal integer width (uint32 for 1) inside extensions.
    ev = Event(
        "e",
        datetime(2026, 1, 1, tzinfo=UTC),
        "c",
        Action.VIEW,
        Party(ActorKind.OWNER),
        extensions={"n": 1},
    )
    canon = encode_event(ev)
    wide = canon.replace(b"\xa1n\x01", b"\xa1n\xce\x00\x00\x00\x01")
    assert wide != canon
    with pytest.raises(MalformedError, match="not canonical"):
        decode_event(wide)
    # Trailing bytes, ext types, hex hash where bin belongs.
    with pytest.raises(MalformedError):
        decode_event(data + b"\xc0")
    with pytest.raises(MalformedError):
        decode_event(b"\xd6\xff\x00\x00\x00\x00")
    hex_hash = copy.deepcopy(plain)
    hex_hash["footage"][0]["sha256"] = "ab" * 32
    with pytest.raises(ValidationError) as info:
        decode_event(_repack(hex_hash))
    assert info.value.field == "$.footage[0].sha256"
    with pytest.raises(MalformedError):
        decode_event(b"\x81\x01\x02")  # integer map key
    with pytest.raises(MalformedError):
        decode_event(b"")


# ---------------------------------------------------------------------------
# Envelopes.


def test_envelope_layout() -> None:
    event_bytes = encode_event(EXAMPLE_EVENT)
    env = make_envelope(ORIGIN, WRITER, 0, GENESIS_PREV, 1_000_001, event_bytes)
    leaf = env.leaf
    assert leaf[0] == 2
    assert struct.unpack(">Q", leaf[1:9])[0] == 0
    assert leaf[9:41] == GENESIS_PREV
    assert struct.unpack(">q", leaf[41:49])[0] == 1_000_001
    assert struct.unpack(">I", leaf[49:53])[0] == WRITER.key_id
    assert struct.unpack(">I", leaf[53:57])[0] == len(event_bytes)
    assert leaf[HEADER_SIZE : HEADER_SIZE + len(event_bytes)] == event_bytes
    assert len(leaf) == HEADER_SIZE + len(event_bytes) + 64
    assert env.content == leaf[:-64]
    assert env.content == encode_content(0, GENESIS_PREV, 1_000_001, WRITER.key_id, event_bytes)
    assert env.chain_hash == hashlib.sha256(CHAIN_PREFIX + env.content).digest()
    assert chain_hash(env.content) == env.chain_hash
    message = RECORD_SIG_PREFIX + ORIGIN.encode() + b"\n" + env.content
    assert signing_message(ORIGIN, env.content) == message
    assert sign_content(ORIGIN, env.content, WRITER) == env.signature
    assert env.logged_at_time == datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC)
    assert timestamp_micros(env.logged_at_time) == 1_000_001


def test_parse_envelope_strict() -> None:
    leaf = _FLIP_ENV.leaf
    with pytest.raises(MalformedError, match="length"):
        parse_envelope(leaf + b"\x00")
    with pytest.raises(MalformedError, match="length"):
        parse_envelope(leaf[:-1])
    with pytest.raises(MalformedError, match="too short"):
        parse_envelope(leaf[:HEADER_SIZE])
    with pytest.raises(MalformedError, match="version"):
        parse_envelope(b"\x01" + leaf[1:])  # version 1 wrote times as strings
    with pytest.raises(MalformedError, match="version"):
        parse_envelope(b"\x03" + leaf[1:])
    with pytest.raises(MalformedError, match="version"):
        parse_envelope(b"\x00" + leaf[1:])
    negative = leaf[:41] + struct.pack(">q", -1) + leaf[49:]
    with pytest.raises(MalformedError, match="outside 1970"):
        parse_envelope(negative)
    huge = leaf[:53] + struct.pack(">I", MAX_EVENT_SIZE + 1) + leaf[57:]
    with pytest.raises(MalformedError, match="larger"):
        parse_envelope(huge)


def test_envelope_field_checks() -> None:
    evb = encode_event(EXAMPLE_EVENT)
    with pytest.raises(MalformedError):
        encode_content(-1, GENESIS_PREV, 0, 0, evb)
    with pytest.raises(MalformedError):
        encode_content(1 << 64, GENESIS_PREV, 0, 0, evb)
    with pytest.raises(MalformedError):
        encode_content(0, bytes(31), 0, 0, evb)
    with pytest.raises(MalformedError):
        encode_content(0, GENESIS_PREV, -1, 0, evb)
    with pytest.raises(MalformedError):
        encode_content(0, GENESIS_PREV, 0, 1 << 32, evb)
    with pytest.raises(MalformedError):
        encode_content(0, GENESIS_PREV, 0, 0, bytes(MAX_EVENT_SIZE + 1))
    with pytest.raises(MalformedError):
        Envelope(1, 0, GENESIS_PREV, 0, 0, evb, bytes(63))
    with pytest.raises(MalformedError):
        Envelope(1, 0, GENESIS_PREV, 0, 0, evb, bytes(64))
    with pytest.raises(MalformedError):
        signing_message("two\nlines", b"")
    with pytest.raises(MalformedError):
        signing_message("", b"")
    with pytest.raises(MalformedError):
        timestamp_micros(datetime(1969, 12, 31, tzinfo=UTC))


def test_verify_untrusted_key() -> None:
    env = _envelope(EXAMPLE_EVENT)
    with pytest.raises(UntrustedKeyError) as info:
        verify_envelope(ORIGIN, env, [OTHER.verifier])
    assert info.value.index == env.seq
    with pytest.raises(UntrustedKeyError):
        verify_envelope(ORIGIN, env, [])


def test_verify_signature_by_another_key() -> None:
    env = _envelope(EXAMPLE_EVENT)
    forged = Envelope(
        env.version,
        env.seq,
        env.prev,
        env.logged_at,
        env.key_id,
        env.event_bytes,
        sign_content(ORIGIN, env.content, OTHER),
    )
    with pytest.raises(BadSignatureError) as info:
        verify_envelope(ORIGIN, forged, [WRITER.verifier])
    assert info.value.index == env.seq


def test_verify_other_origin_fails() -> None:
    env = _envelope(EXAMPLE_EVENT)
    with pytest.raises(BadSignatureError):
        verify_envelope("example.com/ledger/someone-else", env, [WRITER.verifier])


def test_verify_only_type_01_keys_and_same_id_collisions() -> None:
    env = _envelope(EXAMPLE_EVENT)
    # A cosignature key is never a writer, even with the same name and key.
    cosigner = Signer(WRITER.name, bytes(range(32)), KEY_TYPE_COSIGNATURE)
    with pytest.raises(UntrustedKeyError):
        verify_envelope(ORIGIN, env, [cosigner.verifier])
    with pytest.raises(KeyFormatError):
        sign_content(ORIGIN, env.content, cosigner)

    # A different public key that claims the same key ID is tried and fails;
    # the real one still verifies after it.
    # A key whose ID collides with the writer's (IDs are only 32 bits).
    same_id = Verifier(WRITER.name, 1, OTHER.verifier.public_key)
    object.__setattr__(same_id, "key_id", WRITER.key_id)

    with pytest.raises(BadSignatureError):
        verify_envelope(ORIGIN, env, [same_id])
    ok = verify_envelope(ORIGIN, env, [same_id, WRITER.verifier])
    assert ok == WRITER.verifier


def test_event_bytes_flip_is_bad_signature() -> None:
    env = _envelope(EXAMPLE_EVENT)
    leaf = bytearray(env.leaf)
    leaf[HEADER_SIZE + 5] ^= 0x01
    parsed = parse_envelope(bytes(leaf))
    with pytest.raises(BadSignatureError):
        verify_envelope(ORIGIN, parsed, [WRITER.verifier])


def test_extension_depth_is_counted_for_events_built_in_python() -> None:
    value: Any = 1
    for _ in range(MAX_EXTENSION_DEPTH - 1):
        value = [value]
    t = datetime(2026, 1, 1, tzinfo=UTC)
    at_cap = Event("e", t, "cam", Action.VIEW, Party(ActorKind.OWNER), extensions={"deep": value})
    assert decode_event(encode_event(at_cap)) == at_cap
    over = msgspec.structs.replace(at_cap, extensions={"outer": {"deep": value}})
    with pytest.raises(ValidationError, match="nests more than"):
        encode_event(over)


def test_envelope_log_time_beyond_year_9999_is_refused() -> None:
    signer = Signer("example.com/writer", bytes(range(1, 33)))
    event_bytes = records.encode_event(
        records.event_from_json(
            {
                "event_id": "t",
                "occurred_at": "2026-11-27T10:15:00Z",
                "camera_id": "c",
                "action": "view",
                "actor": {"kind": "owner"},
            }
        )
    )
    with pytest.raises(MalformedError):
        records.encode_content(0, records.GENESIS_PREV, records.MAX_LOGGED_AT + 1, 1, event_bytes)
    env = records.make_envelope(
        "example.com/log", signer, 0, records.GENESIS_PREV, records.MAX_LOGGED_AT, event_bytes
    )
    assert records.parse_envelope(env.leaf).logged_at_time.year == 9999
    leaf = bytearray(env.leaf)
    leaf[41:49] = (records.MAX_LOGGED_AT + 1).to_bytes(8, "big")
    with pytest.raises(MalformedError):
        records.parse_envelope(bytes(leaf))


def test_values_are_checked_as_they_will_be_stored() -> None:
    # A str subclass can claim other contents through __str__, and a
    # memoryview's len() counts items: the encoding holds what is really
    # there, and that is what is checked.
    import array

    class Sneaky(str):
        __slots__ = ()

        def __str__(self) -> str:
            return "evil\x00\u202e"

    event = records.Event(
        event_id=Sneaky("ev-1"),
        occurred_at=datetime(2026, 11, 27, tzinfo=UTC),
        camera_id=Sneaky("cam-1"),
        action=Action.VIEW,
        actor=records.Party(ActorKind.OWNER),
    )
    # msgspec writes only exact strs; a subclass is refused, not trusted.
    with pytest.raises(ValidationError, match="cannot be encoded"):
        encode_event(event)
    plain = msgspec.structs.replace(event, event_id="ev-1", camera_id="cam-1")
    decoded = records.decode_event(encode_event(plain))
    assert type(decoded.camera_id) is str
    assert decoded.camera_id == "cam-1"
    event = plain

    wide = memoryview(array.array("Q", range(32)))  # 32 items, 256 bytes
    t = datetime(2026, 11, 27, tzinfo=UTC)
    too_long = records.Clip("c", wide, t, t)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"footage\[0\]\.sha256"):
        encode_event(msgspec.structs.replace(event, footage=(too_long,)))
    clip = records.Clip("c", memoryview(bytes(range(32))), t, t)  # type: ignore[arg-type]
    stored = decode_event(encode_event(msgspec.structs.replace(event, footage=(clip,))))
    assert type(stored.footage[0].sha256) is records.Digest
    assert stored.footage[0].sha256 == bytes(range(32))


def test_check_party_checks_what_building_one_does_not() -> None:
    police = Party(ActorKind.LAW_ENFORCEMENT, organization="Springfield PD")
    assert records.check_party(police) is police
    for bad, field in (
        (Party(ActorKind.LAW_ENFORCEMENT, organization="bad\x00org"), "$.organization"),
        (Party(ActorKind.OWNER, id=""), "$.id"),
        (Party("robot"), "$.kind"),  # type: ignore[arg-type]
        (Party(ActorKind.OWNER, id="x" * 257), "$.id"),
    ):
        with pytest.raises(ValidationError) as info:
            records.check_party(bad)
        assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # A newline in the justification is allowed; an escape anywhere else is
        # still found, however many newlines the justification holds.
        ({"justification": "a\nb", "camera_id": "c\td"}, "$.camera_id"),
        ({"justification": "a\n\tb", "legal_reference": "r\nx"}, "$.legal_reference"),
        ({"justification": "a\nb\x08"}, "$.justification"),
        ({"justification": "a\nb", "purpose": "p\u202e"}, "$.purpose"),
        ({"justification": "a\nb", "actor": {"kind": "owner", "id": "a\x7fb"}}, "$.actor.id"),
        ({"justification": "a\nb", "event_id": "a\nb"}, "$.event_id"),
    ],
)
def test_a_newline_in_the_justification_clears_nothing_else(
    changes: dict[str, Any], field: str
) -> None:
    assert _field_of(example(**changes)) == field
    t = datetime(2026, 1, 1, tzinfo=UTC)
    built = msgspec.structs.replace(
        Event("e", t, "c", Action.VIEW, Party(ActorKind.OWNER)),
        **{k: v for k, v in changes.items() if k != "actor"},
    )
    if "actor" not in changes:
        with pytest.raises(ValidationError) as info:
            encode_event(built)
        assert info.value.field == field


def test_newlines_and_quotes_in_the_justification_are_kept() -> None:
    text = 'He said "no".\n\tThen:\\ left.'
    ev = event_from_json_text(json.dumps(example(justification=text)))
    assert ev.justification == text
    assert decode_event(encode_event(ev)).justification == text
