"""The quarantine queue as view models (workbench layer, pure): filters, rows with their review
state, bulk digests and the failed rules' limits for the plot. No I/O: routes pass lake rows in."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from plantlake.core.contracts import CONFIRM_FAULT, RELEASE, REVIEW_DECISIONS, REVIEW_STATUS
from plantlake.pipelines.transforms.expectations import UNIT_RULE, Rule
from plantlake.pipelines.transforms.rules.range import RangeParams
from plantlake.workbench.review_store import ReadingKey

OPEN = "open"
RELEASED = REVIEW_STATUS[RELEASE]
# Statuses a planner has settled: a note comments on a reading, it does not settle it.
SETTLED = frozenset((REVIEW_STATUS[RELEASE], REVIEW_STATUS[CONFIRM_FAULT]))
STATUS_FILTERS = ("open", "decided", "all")
PAGE_SIZE = 100
# A bulk decision larger than this is refused: narrow the filter (it is one Delta commit).
MAX_BULK = 5_000
# Kafka's legal topic names; anything else in a URL is not a reading.
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BULK_ID = re.compile(r"[0-9a-f]{32}")


class FilterError(ValueError):
    """A queue filter that cannot be used (a bad time or status); the message says which."""


# -- filters -----------------------------------------------------------------------------------


def parse_time(text: str | None, *, field: str) -> dt.datetime | None:
    """An ISO time from a form (`2024-05-01T10:00` as a datetime-local input sends it); a naive
    time is UTC, as every time in the lake. Empty: None."""
    if not text or not text.strip():
        return None
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise FilterError(f"{field}: {text!r} is not a time (use 2024-05-01T10:00)") from exc
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True)
class QueueFilter:
    """What the planner asked to see: rule, asset, sensor, line (site/line), review status and
    an event-time range (since inclusive, until exclusive)."""

    rule: str = ""
    asset: str = ""
    sensor: str = ""
    line: str = ""
    status: str = OPEN
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    page: int = 1

    def params(self, *, page: int | None = None) -> dict[str, str]:
        """The filter as form fields (what `parse_filter` reads back); empty ones left out."""
        fields = {
            "rule": self.rule,
            "asset": self.asset,
            "sensor": self.sensor,
            "line": self.line,
            "status": self.status,
            "since": _form_time(self.since),
            "until": _form_time(self.until),
        }
        chosen = page if page is not None else self.page
        if chosen != 1:
            fields["page"] = str(chosen)
        return {k: v for k, v in fields.items() if v}

    def query(self, *, page: int | None = None) -> str:
        return urlencode(self.params(page=page))

    def matches(self, row: QueueRow) -> bool:
        """Whether a row is in the filtered set (the lake read may have narrowed it already)."""
        if self.rule and self.rule not in row.rule_names:
            return False
        if self.asset and row.asset != self.asset:
            return False
        if self.sensor and row.sensor != self.sensor:
            return False
        if self.line and row.line != self.line.strip("/"):
            return False
        if self.status == "open" and row.review.settled:
            return False
        if self.status == "decided" and not row.review.settled:
            return False
        if self.since is not None and row.event_time < self.since:
            return False
        return not (self.until is not None and row.event_time >= self.until)


def _form_time(value: dt.datetime | None) -> str:
    """A time as a datetime-local field holds it (UTC); seconds only when there are some, so a
    filter read back from a form is the same filter (a bulk form relies on it)."""
    if value is None:
        return ""
    naive = value.astimezone(dt.UTC).replace(tzinfo=None)
    whole_minute = naive.second == 0 and naive.microsecond == 0
    return naive.isoformat(timespec="minutes" if whole_minute else "auto")


def parse_filter(params: Mapping[str, str]) -> QueueFilter:
    """A filter from query or form parameters; raises FilterError naming the bad field."""
    status = (params.get("status") or OPEN).strip()
    if status not in STATUS_FILTERS:
        raise FilterError(f"status: {status!r} is not one of {', '.join(STATUS_FILTERS)}")
    since = parse_time(params.get("since"), field="since")
    until = parse_time(params.get("until"), field="until")
    if since is not None and until is not None and since >= until:
        raise FilterError("since must be before until")
    try:
        page = max(1, int(params.get("page") or 1))
    except ValueError as exc:
        raise FilterError(f"page: {params.get('page')!r} is not a number") from exc
    return QueueFilter(
        rule=(params.get("rule") or "").strip(),
        asset=(params.get("asset") or "").strip(),
        sensor=(params.get("sensor") or "").strip(),
        line=(params.get("line") or "").strip().strip("/"),
        status=status,
        since=since,
        until=until,
        page=page,
    )


# -- rows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedRule:
    rule: str
    action: str
    reason: str


@dataclass(frozen=True)
class Lineage:
    """Where a reading came from: its Kafka record and the edge process and source that sent it."""

    kafka_topic: str
    kafka_partition: int
    kafka_offset: int
    edge_instance: str | None
    edge_seq: int | None
    source_node: str | None
    source_protocol: str | None


@dataclass(frozen=True)
class Review:
    """A reading's review state. The app's own decision shows at once (`applied` False: the
    silver job has not written it into silver.quarantine yet)."""

    status: str  # open, released, confirmed_fault or noted
    decision_id: str | None = None
    decision: str | None = None
    reviewer: str | None = None
    decided_at: dt.datetime | None = None
    note: str | None = None
    applied: bool = True

    @property
    def settled(self) -> bool:
        return self.status in SETTLED

    @property
    def label(self) -> str:
        if self.status == OPEN:
            return OPEN
        return f"{self.status.replace('_', ' ')} · {'applied' if self.applied else 'pending in silver'}"


@dataclass(frozen=True)
class QueueRow:
    """One quarantined reading as the device sent it, its failed rules, lineage and review."""

    key: ReadingKey
    asset: str
    sensor: str
    value: float | None
    unit: str | None
    quality: str | None
    event_time_ms: int
    failed_rules: tuple[FailedRule, ...]
    lineage: Lineage
    review: Review

    @property
    def event_time(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.event_time_ms / 1000, tz=dt.UTC)

    @property
    def line(self) -> str:
        """The asset path's site/line (the path is site/line/asset)."""
        return "/".join(self.asset.split("/")[:2])

    @property
    def rule_names(self) -> tuple[str, ...]:
        return tuple(f.rule for f in self.failed_rules)

    @property
    def path(self) -> str:
        """The reading's detail page."""
        k = self.key
        return f"/quarantine/reading/{quote(k.kafka_topic, safe='')}/{k.kafka_partition}/{k.kafka_offset}"

    @property
    def key_text(self) -> str:
        k = self.key
        return f"{k.kafka_topic}/{k.kafka_partition}/{k.kafka_offset}"


def refusal(row: QueueRow, decision: str) -> str | None:
    """Why `decision` cannot be made on the reading, or None when it can."""
    if decision not in REVIEW_DECISIONS:
        return f"unknown decision {decision!r}"
    if row.review.status == RELEASED:
        # The reading is in silver.telemetry (and maybe in gold): a release cannot be undone.
        return "the reading was released into silver.telemetry; a release is final"
    if decision == RELEASE and UNIT_RULE in row.rule_names:
        return (
            f"silver could not convert its unit {row.unit!r} to the quantity's canonical unit, "
            "so it cannot enter silver.telemetry: confirm the fault or add a note"
        )
    return None


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def _optional_int(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _time(value: object) -> dt.datetime | None:
    if value is None or not isinstance(value, dt.datetime):
        return None  # pandas gives NaT (not a datetime subclass instance that is valid) for null
    if value != value:  # NaT
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def reading_key(record: Mapping) -> ReadingKey:
    return ReadingKey(
        str(record["kafka_topic"]), int(record["kafka_partition"]), int(record["kafka_offset"])
    )


def review_of(record: Mapping, latest: Mapping | None) -> Review:
    """The review state of a silver.quarantine row given the reading's latest decision in
    silver.quarantine_reviews (None: no decision): the decision wins, applied when silver's
    review columns already carry its id."""
    if latest is None:
        status = _text(record.get("review_status")) or OPEN
        return Review(
            status=status,
            decision_id=_text(record.get("review_decision_id")),
            reviewer=_text(record.get("reviewer")),
            decided_at=_time(record.get("decided_at")),
            note=_text(record.get("review_note")),
        )
    decision = str(latest["decision"])
    decision_id = str(latest["decision_id"])
    return Review(
        status=REVIEW_STATUS.get(decision, decision),
        decision_id=decision_id,
        decision=decision,
        reviewer=_text(latest.get("reviewer")),
        decided_at=_time(latest.get("decided_at")),
        note=_text(latest.get("note")),
        applied=_text(record.get("review_decision_id")) == decision_id,
    )


def queue_row(record: Mapping, latest: Mapping | None) -> QueueRow:
    """A view of one silver.quarantine row (a mapping of its columns)."""
    listed = record.get("failed_rules")
    failed = tuple(
        FailedRule(str(f["rule"]), str(f.get("action") or ""), str(f.get("reason") or ""))
        for f in (() if listed is None else listed)
    )
    key = reading_key(record)
    return QueueRow(
        key=key,
        asset=str(record["asset"]),
        sensor=str(record["sensor"]),
        value=_number(record.get("value")),
        unit=_text(record.get("unit")),
        quality=_text(record.get("quality")),
        event_time_ms=int(record["event_time_ms"]),
        failed_rules=failed,
        lineage=Lineage(
            kafka_topic=key.kafka_topic,
            kafka_partition=key.kafka_partition,
            kafka_offset=key.kafka_offset,
            edge_instance=_text(record.get("edge_instance")),
            edge_seq=_optional_int(record.get("edge_seq")),
            source_node=_text(record.get("source_node")),
            source_protocol=_text(record.get("source_protocol")),
        ),
        review=review_of(record, latest),
    )


def queue_rows(records: Iterable[Mapping], latest: Mapping[ReadingKey, Mapping]) -> list[QueueRow]:
    """Rows of the queue, newest event first (ties by Kafka position, so pages are stable)."""
    rows = [queue_row(r, latest.get(reading_key(r))) for r in records]
    rows.sort(key=lambda r: (-r.event_time_ms, r.key_text))
    return rows


@dataclass(frozen=True)
class Page:
    rows: list[QueueRow]
    number: int
    pages: int
    total: int


def page_of(rows: Sequence[QueueRow], number: int, *, size: int = PAGE_SIZE) -> Page:
    """One page of the rows (the last page if `number` is past it)."""
    pages = max(1, math.ceil(len(rows) / size))
    number = min(max(1, number), pages)
    start = (number - 1) * size
    return Page(list(rows[start : start + size]), number, pages, len(rows))


# -- bulk decisions ----------------------------------------------------------------------------


def bulk_digest(rows: Iterable[QueueRow]) -> str:
    """A digest of the (reading, latest decision) pairs of a set: it changes when a reading
    joins or leaves the set or gets a new decision, which is when a bulk decision is refused."""
    lines = sorted(f"{r.key_text}\t{r.review.decision_id or ''}" for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def is_bulk_id(text: str) -> bool:
    return _BULK_ID.fullmatch(text) is not None


def bulk_decision_id(bulk_id: str, key: ReadingKey) -> str:
    """The decision id of one reading in a bulk decision: the bulk's id (made when the page was
    rendered) and the reading, so submitting the same bulk form twice repeats the same ids."""
    reading = f"{key.kafka_topic}/{key.kafka_partition}/{key.kafka_offset}"
    return f"{bulk_id}-{hashlib.sha256(reading.encode()).hexdigest()[:16]}"


def bulk_targets(rows: Iterable[QueueRow], decision: str) -> tuple[list[QueueRow], list[QueueRow]]:
    """(readings the bulk decision applies to, readings that refuse it). Released readings are
    left out of both: a release is final, and a bulk set may include them (status "all")."""
    targets: list[QueueRow] = []
    refused: list[QueueRow] = []
    for row in rows:
        if row.review.status == RELEASED:
            continue
        (refused if refusal(row, decision) else targets).append(row)
    return targets, refused


# -- units and limits --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitConversion:
    """One reference.units row: canonical = value * scale + offset."""

    quantity: str
    canonical: str
    scale: float
    offset: float


def unit_table(rows: Iterable[Mapping]) -> dict[str, UnitConversion]:
    """reference.units rows (unit, quantity, canonical_unit, scale, offset) by device unit."""
    return {
        (row["unit"] or ""): UnitConversion(
            str(row["quantity"]), row["canonical_unit"] or "", float(row["scale"]),
            float(row["offset"]),
        )
        for row in rows
    }  # fmt: skip


def to_canonical(
    value: float | None, unit: str | None, units: Mapping[str, UnitConversion]
) -> tuple[float, str] | None:
    """(value, canonical unit) of a value in a device unit; None when the unit has no
    conversion (the reading failed silver's `unit` rule) or the value is missing."""
    conversion = units.get(unit or "")
    if value is None or conversion is None:
        return None
    return value * conversion.scale + conversion.offset, conversion.canonical


@dataclass(frozen=True)
class Limit:
    """A horizontal line on the plot: a failed rule's bound in the plot's unit."""

    rule: str
    bound: str  # "min" or "max"
    value: float
    unit: str


def rule_limits(
    rules: Iterable[Rule], failed: Iterable[str], *, unit: str,
    units: Mapping[str, UnitConversion],
) -> list[Limit]:  # fmt: skip
    """The numeric value limits of the failed rules, converted to `unit` (the plot's, canonical).

    Only `range` rules bound the value itself; rate-of-change, stuck, event-time and other rules
    have no line to draw. A rule whose unit has no conversion to `unit` is left out.
    """
    names = set(failed)
    limits = []
    for rule in rules:
        if rule.name not in names or not isinstance(rule.params, RangeParams):
            continue
        params = rule.params
        for bound, value in (("min", params.min), ("max", params.max)):
            if value is None:
                continue
            converted = _in_unit(value, params.unit, unit, units)
            if converted is not None:
                limits.append(Limit(rule.name, bound, converted, unit))
    return limits


def _in_unit(
    value: float, source: str, target: str, units: Mapping[str, UnitConversion]
) -> float | None:
    if source == target:
        return value
    converted = to_canonical(value, source, units)
    return converted[0] if converted is not None and converted[1] == target else None


def is_topic(text: str) -> bool:
    """Whether `text` can be a Kafka topic name (the detail page's URL carries one)."""
    return _TOPIC.fullmatch(text) is not None
