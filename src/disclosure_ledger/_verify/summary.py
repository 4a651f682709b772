"""What a verification found: the report's values, and the tallies that fill them.

This module owns the owner's report as data: :class:`Report` (its existence is
the verdict), :class:`Disclosure` (one access by someone other than the
owner, in full) and how records are counted into them. The verifier decodes
every record on its thread pool and adds it to a :class:`ChunkTally`; the
tallies are folded in ledger order into one :class:`Tally`, which caps the
lists and builds the :class:`Report`. Nothing here checks a signature or a
root: by the time a record is tallied, its chunk is being verified, and a
failure anywhere discards the tally. Which accesses count as what is
:func:`records.access_class`, the one definition the release gate shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from disclosure_ledger._core import records

__all__ = ["DEFAULT_MAX_LISTED", "ChunkTally", "Disclosure", "FootageRef", "Report", "Tally"]

DEFAULT_MAX_LISTED = 10_000
"""How many disclosures of each kind (without / with consent) a report lists in full."""
_MAX_DISTINCT = 1000
_MAX_CLIPS = 16
_MAX_TEXT = 2000
_MAX_KEY_TEXT = 200
_OUTSIDE = records.AccessClass.OUTSIDE
_STAFF = records.AccessClass.VENDOR_STAFF
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OTHER = "(other)"
_NO_BASIS = b"(not stated)"
_NO_RECIPIENT = b"(no recipient)"
_NO_ORG = b"(no organization)"


# -- the report ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FootageRef:
    """A piece of footage a disclosure concerns (times as ``YYYY-MM-DDTHH:MM:SSZ``)."""

    clip_id: str
    sha256: str
    start: str
    end: str


@dataclass(frozen=True, slots=True)
class Disclosure:
    """One access to footage by someone other than the owner, in full detail.

    ``access_class`` is :func:`records.access_class` (``outside``,
    ``vendor_staff`` or ``vendor_system``); an ``outside`` access is a
    disclosure. ``without_consent`` is :func:`records.is_without_consent`.
    Long texts are cut to 2000 characters and at most 16 clips are kept
    (``footage_count`` says how many the record names).
    """

    index: int
    event_id: str
    occurred_at: str
    camera_id: str
    action: str
    actor_kind: str
    actor_id: str | None
    actor_organization: str | None
    recipient_kind: str | None
    recipient_id: str | None
    recipient_organization: str | None
    legal_basis: str | None
    legal_reference: str | None
    justification: str | None
    consent: bool | None
    without_consent: bool
    owner_notified_at: str | None
    notification_deferred_until: str | None
    footage: tuple[FootageRef, ...]
    footage_count: int
    access_class: str = records.AccessClass.OUTSIDE.value

    @property
    def notification(self) -> str:
        """Whether and when the owner was told, in words."""
        if self.owner_notified_at is not None:
            return f"owner notified at {self.owner_notified_at}"
        if self.notification_deferred_until is not None:
            return f"notification deferred until {self.notification_deferred_until}"
        return "owner not notified"


@dataclass(frozen=True, slots=True)
class Report:
    """What a successful :func:`verify` found. Its existence is the verdict: verified.

    Counts are ``(name, count)`` pairs, largest first; a category with more
    than 1000 distinct names lumps the rest under ``(other)``.

    Every record is classified by :func:`records.access_class`, and every
    access by someone other than the owner is listed, in three sections:
    ``disclosures`` (outside parties: those without the owner's consent
    first, then the others), ``staff_accesses`` (the vendor's employees and
    contractors) and ``system_accesses`` (the vendor's automated systems),
    each in ledger order and capped at ``max_listed`` entries per list (per
    consent kind for disclosures). The ``*_count`` fields count them all, so
    the ``unlisted_*`` properties say how many the cap left out.
    ``system_totals`` counts vendor-system accesses by ``(system, action)``,
    every one of them, listed or not. ``consistency`` says what earlier
    checkpoints the ledger was shown consistent with.
    """

    origin: str
    size: int
    from_size: int
    root: bytes
    checkpoint: str
    log_key: str
    cosigners: tuple[str, ...]
    quorum: str
    first_occurred_at: str | None
    last_occurred_at: str | None
    first_logged_at: str | None
    last_logged_at: str | None
    actions: tuple[tuple[str, int], ...]
    legal_bases: tuple[tuple[str, int], ...]
    recipient_organizations: tuple[tuple[str, int], ...]
    writers: tuple[tuple[str, int], ...]
    disclosures: tuple[Disclosure, ...]
    disclosure_count: int
    without_consent_count: int
    consistency: tuple[str, ...]
    staff_accesses: tuple[Disclosure, ...] = ()
    staff_access_count: int = 0
    system_accesses: tuple[Disclosure, ...] = ()
    system_access_count: int = 0
    system_totals: tuple[tuple[str, str, int], ...] = ()
    max_listed: int = DEFAULT_MAX_LISTED
    state_saved: bool = False

    @property
    def verdict(self) -> str:
        """Always ``"verified"``: a failed verification raises instead."""
        return "verified"

    @property
    def record_count(self) -> int:
        """How many records the bundle held and the verifier checked."""
        return self.size - self.from_size

    @property
    def unlisted_disclosures(self) -> int:
        """Disclosures counted but not listed because of the cap."""
        return self.disclosure_count - len(self.disclosures)

    @property
    def unlisted_staff_accesses(self) -> int:
        """Vendor-staff accesses counted but not listed because of the cap."""
        return self.staff_access_count - len(self.staff_accesses)

    @property
    def unlisted_system_accesses(self) -> int:
        """Vendor-system accesses counted (in ``system_totals``) but not listed."""
        return self.system_access_count - len(self.system_accesses)


# -- tallies ---------------------------------------------------------------------------


@dataclass(slots=True)
class ChunkTally:
    """The counts and lists of one chunk of records, made on the verifier's pool."""

    actions: dict[bytes, int] = field(default_factory=dict)
    bases: dict[bytes, int] = field(default_factory=dict)
    orgs: dict[bytes, int] = field(default_factory=dict)
    writers: dict[str, int] = field(default_factory=dict)
    first_occurred: tuple[bytes, bytes] | None = None
    last_occurred: tuple[bytes, bytes] | None = None
    first_logged: int | None = None
    last_logged: int | None = None
    disclosures: list[Disclosure] = field(default_factory=list)
    staff: list[Disclosure] = field(default_factory=list)
    system: list[Disclosure] = field(default_factory=list)
    system_totals: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, index: int, event: records.Event, logged_at: int, writer: str) -> None:
        """Count record ``index``: its event, when it was logged and who signed it."""
        _event_id, action, occurred, basis, org = _event_fields(event)
        self.writers[writer] = self.writers.get(writer, 0) + 1
        if self.first_logged is None or logged_at < self.first_logged:
            self.first_logged = logged_at
        if self.last_logged is None or logged_at > self.last_logged:
            self.last_logged = logged_at
        actions, bases, orgs = self.actions, self.bases, self.orgs
        actions[action] = actions.get(action, 0) + 1
        basis = _NO_BASIS if basis is None else basis
        bases[basis] = bases.get(basis, 0) + 1
        org = _NO_ORG if not org else org[:_MAX_KEY_TEXT]
        orgs[org] = orgs.get(org, 0) + 1
        key = _time_key(occurred)
        if self.first_occurred is None or key < self.first_occurred:
            self.first_occurred = key
        if self.last_occurred is None or key > self.last_occurred:
            self.last_occurred = key
        cls = records.access_class(event)
        if cls is None:
            return  # the owner's own access
        if cls is _OUTSIDE:
            self.disclosures.append(_disclosure(index, event, cls))
        elif cls is _STAFF:
            self.staff.append(_disclosure(index, event, cls))
        else:
            total = (_system_name(event.actor)[:_MAX_KEY_TEXT], event.action.value)
            self.system_totals[total] = self.system_totals.get(total, 0) + 1
            self.system.append(_disclosure(index, event, cls))


class Tally:
    """Every chunk's tally folded in ledger order, with each list capped at ``max_listed``."""

    def __init__(self, max_listed: int) -> None:
        self.actions: dict[str, int] = {}
        self.bases: dict[str, int] = {}
        self.orgs: dict[str, int] = {}
        self.writers: dict[str, int] = {}
        self.first_occurred: tuple[bytes, bytes] | None = None
        self.last_occurred: tuple[bytes, bytes] | None = None
        self.first_logged: int | None = None
        self.last_logged: int | None = None
        self.without_consent: list[Disclosure] = []
        self.with_consent: list[Disclosure] = []
        self.disclosure_count = 0
        self.without_consent_count = 0
        self.staff: list[Disclosure] = []
        self.staff_count = 0
        self.system: list[Disclosure] = []
        self.system_count = 0
        self.system_totals: dict[tuple[str, str], int] = {}
        self.max_listed = max_listed

    def absorb(self, chunk: ChunkTally) -> None:
        """Fold the next chunk's tally in."""
        _merge(self.actions, chunk.actions)
        _merge(self.bases, chunk.bases)
        _merge(self.orgs, chunk.orgs)
        _merge(self.writers, chunk.writers)
        self.first_occurred = _least(self.first_occurred, chunk.first_occurred)
        self.last_occurred = _most(self.last_occurred, chunk.last_occurred)
        self.first_logged = _least(self.first_logged, chunk.first_logged)
        self.last_logged = _most(self.last_logged, chunk.last_logged)
        for d in chunk.disclosures:
            self.disclosure_count += 1
            if d.without_consent:
                self.without_consent_count += 1
                if len(self.without_consent) < self.max_listed:
                    self.without_consent.append(d)
            elif len(self.with_consent) < self.max_listed:
                self.with_consent.append(d)
        self.staff_count += len(chunk.staff)
        self.staff += chunk.staff[: max(0, self.max_listed - len(self.staff))]
        self.system_count += len(chunk.system)
        self.system += chunk.system[: max(0, self.max_listed - len(self.system))]
        totals = self.system_totals
        for key, n in chunk.system_totals.items():
            slot = key if key in totals or len(totals) < _MAX_DISTINCT else (_OTHER, key[1])
            totals[slot] = totals.get(slot, 0) + n

    def report(  # noqa: PLR0917  # the verified facts, in the Report's field order
        self,
        origin: str,
        size: int,
        from_size: int,
        root: bytes,
        checkpoint: str,
        log_key: str,
        cosigners: tuple[str, ...],
        quorum: str,
        consistency: tuple[str, ...],
    ) -> Report:
        """The report of a verification that succeeded, with these verified facts."""
        return Report(
            origin=origin,
            size=size,
            from_size=from_size,
            root=root,
            checkpoint=checkpoint,
            log_key=log_key,
            cosigners=cosigners,
            quorum=quorum,
            first_occurred_at=_time_text(self.first_occurred),
            last_occurred_at=_time_text(self.last_occurred),
            first_logged_at=_micros_text(self.first_logged),
            last_logged_at=_micros_text(self.last_logged),
            actions=_ranked(self.actions),
            legal_bases=_ranked(self.bases),
            recipient_organizations=_ranked(self.orgs),
            writers=_ranked(self.writers),
            disclosures=tuple(self.without_consent + self.with_consent),
            disclosure_count=self.disclosure_count,
            without_consent_count=self.without_consent_count,
            consistency=consistency,
            staff_accesses=tuple(self.staff),
            staff_access_count=self.staff_count,
            system_accesses=tuple(self.system),
            system_access_count=self.system_count,
            system_totals=tuple(
                (name, action, count)
                for (name, action), count in sorted(
                    self.system_totals.items(), key=lambda kv: (-kv[1], kv[0])
                )
            ),
            max_listed=self.max_listed,
        )


def _time_key(text: bytes) -> tuple[bytes, bytes]:
    # Canonical times omit a zero fraction, so compare seconds, then fraction.
    return (text[:19], text[19:-1])


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_TEXT:
        return text
    return text[: _MAX_TEXT - 1] + "…"


def _disclosure(index: int, event: records.Event, cls: records.AccessClass) -> Disclosure:
    actor = event.actor
    recipient = event.recipient
    clips = tuple(
        FootageRef(
            c.clip_id, c.sha256.hex(), records.format_time(c.start), records.format_time(c.end)
        )
        for c in event.footage[:_MAX_CLIPS]
    )
    return Disclosure(
        index=index,
        event_id=event.event_id,
        occurred_at=records.format_time(event.occurred_at),
        camera_id=event.camera_id,
        action=event.action.value,
        actor_kind=actor.kind.value,
        actor_id=actor.id,
        actor_organization=actor.organization,
        recipient_kind=None if recipient is None else recipient.kind.value,
        recipient_id=None if recipient is None else recipient.id,
        recipient_organization=None if recipient is None else recipient.organization,
        legal_basis=None if event.legal_basis is None else event.legal_basis.value,
        legal_reference=event.legal_reference,
        justification=_cut(event.justification),
        consent=event.consent,
        without_consent=records.is_without_consent(event),
        owner_notified_at=None
        if event.owner_notified_at is None
        else records.format_time(event.owner_notified_at),
        notification_deferred_until=None
        if event.notification_deferred_until is None
        else records.format_time(event.notification_deferred_until),
        footage=clips,
        footage_count=len(event.footage),
        access_class=cls.value,
    )


def _system_name(actor: records.Party) -> str:
    """How a vendor system is named in the per-system totals."""
    return actor.id or actor.organization or "(unnamed system)"


_Fields = tuple[bytes, bytes, bytes, bytes | None, bytes | None]
_T = TypeVar("_T", int, tuple[bytes, bytes])


def _event_fields(event: records.Event) -> _Fields:
    """Return event_id, action, occurred_at, legal basis and recipient organization, as bytes."""
    recipient_org: bytes | None = _NO_RECIPIENT
    if event.recipient is not None:
        o = event.recipient.organization
        recipient_org = None if o is None else o.encode()
    return (
        event.event_id.encode(),
        event.action.value.encode(),
        records.format_time(event.occurred_at).encode(),
        None if event.legal_basis is None else event.legal_basis.value.encode(),
        recipient_org,
    )


def _merge(total: dict[str, int], part: dict[bytes, int] | dict[str, int]) -> None:
    for raw_key, n in part.items():
        key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
        if key in total or len(total) < _MAX_DISTINCT:
            total[key] = total.get(key, 0) + n
        else:
            total[_OTHER] = total.get(_OTHER, 0) + n


def _ranked(table: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(table.items(), key=lambda kv: (-kv[1], kv[0])))


def _micros_text(micros: int | None) -> str | None:
    if micros is None:
        return None
    return records.format_time(_EPOCH + timedelta(microseconds=micros))


def _least(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else min(a, b)


def _most(a: _T | None, b: _T | None) -> _T | None:
    return b if a is None else a if b is None else max(a, b)


def _time_text(key: tuple[bytes, bytes] | None) -> str | None:
    return None if key is None else (key[0] + key[1]).decode("ascii", "replace") + "Z"
