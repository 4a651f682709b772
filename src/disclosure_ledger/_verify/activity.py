"""Activity aggregates for the owner's page: accesses per hour by kind, and per camera.

This module owns what the verifier counts for charts, beside the counts the
report already keeps: how many accesses happened in each UTC hour, split by
who they reached (the owner, the vendor's staff, the vendor's systems, an
outside party; and of those, how many without the owner's consent), and how
many touched each camera. Hours rather than days, so that the page can
regroup them into days (or weeks, or months) in whatever zone the owner reads
it in; a zone offset that is not a whole number of hours moves a bucket by
that fraction. The counts are small whatever the ledger's size: one entry per
hour that saw any access, and at most :data:`MAX_DISTINCT` cameras (the rest
are counted as ``(other)``), so a million records make a few kilobytes.

A :class:`ActivityTally` is filled per chunk of records (on any thread) and
merged in ledger order; :meth:`ActivityTally.result` freezes it into the
:class:`Activity` the report carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from disclosure_ledger._core import records

__all__ = [
    "KINDS",
    "MAX_DISTINCT",
    "MAX_HOURS",
    "Activity",
    "ActivityTally",
    "HourCount",
    "kind_of",
]

KINDS = ("owner", "vendor_staff", "vendor_system", "outside")
"""The kinds of access counted per hour, in the order of :class:`HourCount`'s counts."""

MAX_DISTINCT = 1000
"""The most cameras counted by name; further ones are counted as ``(other)``."""

MAX_HOURS = 24 * 366 * 30
"""The most distinct hours kept (30 years); accesses in further hours are counted apart."""

_OTHER = "(other)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_KIND_INDEX = {
    None: 0,
    records.AccessClass.VENDOR_STAFF: 1,
    records.AccessClass.VENDOR_SYSTEM: 2,
    records.AccessClass.OUTSIDE: 3,
}


def kind_of(cls: records.AccessClass | None) -> int:
    """Return the index in :data:`KINDS` of an access class (``None``: the owner's own).

    Raises:
        KeyError: for a value that is not an :class:`~records.AccessClass` or ``None``.
    """
    return _KIND_INDEX[cls]


@dataclass(frozen=True, slots=True)
class HourCount:
    """The accesses that occurred in one UTC hour (``hour`` counts hours since 1970).

    ``counts`` follows :data:`KINDS`; ``without_consent`` is how many of the
    ``outside`` ones were made without the owner's consent.
    """

    hour: int
    counts: tuple[int, int, int, int]
    without_consent: int

    @property
    def start(self) -> datetime:
        """The hour's first instant, in UTC."""
        return _EPOCH + timedelta(hours=self.hour)


@dataclass(frozen=True, slots=True)
class Activity:
    """Accesses per hour (in time order) and per camera (largest first).

    ``unplaced`` counts accesses that fell in hours beyond :data:`MAX_HOURS`
    distinct ones; they are in every other count but not on a timeline.
    """

    hours: tuple[HourCount, ...] = ()
    cameras: tuple[tuple[str, int], ...] = ()
    unplaced: int = 0


class ActivityTally:
    """A mutable collector of :class:`Activity`: fill with :meth:`add`, combine with :meth:`merge`.

    Raises:
        Nothing on construction.
    """

    __slots__ = ("_cameras", "_hours", "_unplaced")

    def __init__(self) -> None:
        self._hours: dict[int, list[int]] = {}
        self._cameras: dict[str, int] = {}
        self._unplaced = 0

    def add(self, occurred_at: datetime, camera_id: str, kind: int, without_consent: bool) -> None:
        """Count one access that occurred at ``occurred_at`` (aware) on ``camera_id``.

        ``kind`` is an index in :data:`KINDS` (see :func:`kind_of`).

        Raises:
            IndexError: if ``kind`` is not an index in :data:`KINDS` (a programming error).
        """
        hour = (occurred_at - _EPOCH) // timedelta(hours=1)
        slot = self._hours.get(hour)
        if slot is None:
            slot = self._hours[hour] = [0, 0, 0, 0, 0]
        slot[kind] += 1
        if without_consent:
            slot[4] += 1
        cams = self._cameras
        cams[camera_id] = cams.get(camera_id, 0) + 1

    def merge(self, other: ActivityTally) -> None:
        """Add ``other``'s counts to this tally, keeping the distinct-value caps.

        Raises:
            Nothing: it adds counts.
        """
        hours = self._hours
        for hour, counts in other._hours.items():
            slot = hours.get(hour)
            if slot is None:
                if len(hours) >= MAX_HOURS:
                    self._unplaced += sum(counts[:4])
                    continue
                slot = hours[hour] = [0, 0, 0, 0, 0]
            for i, n in enumerate(counts):
                slot[i] += n
        self._unplaced += other._unplaced
        cams = self._cameras
        for name, n in other._cameras.items():
            key = name if name in cams or len(cams) < MAX_DISTINCT else _OTHER
            cams[key] = cams.get(key, 0) + n

    def result(self) -> Activity:
        """Return the counts so far as an :class:`Activity`.

        Raises:
            Nothing: it sorts and copies counts.
        """
        hours = tuple(
            HourCount(hour, (c[0], c[1], c[2], c[3]), c[4])
            for hour, c in sorted(self._hours.items())
        )
        cameras = tuple(sorted(self._cameras.items(), key=lambda kv: (-kv[1], kv[0])))
        return Activity(hours, cameras, self._unplaced)
