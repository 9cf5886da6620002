"""Registry drafts from what devices say about themselves: browsed OPC-UA variables or Sparkplug
births in, `RegistryEntry` drafts and the edge's tag list out (ingest layer, pure: no I/O).

A draft is a file a person reviews before `plantlake reference import` loads it, never a silent
load: the asset class is a guess from the asset's name, valid_from is the discovery time, and a
signal whose quantity cannot be told from its unit is listed for review instead of being dropped
or guessed at. Protocol adapters (`plantlake.ingest.opcua.discover`,
`plantlake.ingest.sparkplug.discover`) produce the `Discovery`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import yaml
from pydantic import ValidationError

from plantlake.core.clock import iso_ms
from plantlake.core.registry_entries import Protocol, RegistryEntry, registry_yaml
from plantlake.core.units import quantity_of

# The class a draft gives an asset whose name yields none; a valid asset_class, and obviously
# a placeholder to whoever reviews the draft.
UNCLASSIFIED = "unclassified"
_NUMBERED = re.compile(r"[-_.]?\d+$")


@dataclass(frozen=True)
class Signal:
    """One sensor as its device describes it.

    `unit` is None when the device gives none (no EngineeringUnits, no engUnit); "" is the
    dimensionless unit ("one"). `datatype` is the Sparkplug datatype name (DOUBLE, BOOLEAN),
    None for OPC-UA. `problem` is set by the adapter for a signal the edge cannot read as a
    number (it goes to review, whatever its unit).
    """

    asset: str  # site/line/asset
    sensor: str
    unit: str | None
    address: str  # OPC-UA NodeId, or Sparkplug group/edge_node/device/metric
    datatype: str | None = None
    eu_range: tuple[float, float] | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What one discovery saw: from which endpoint or broker, when, and every signal. `notes`
    are what was seen but is no signal (a malformed birth, a metric that does not decode)."""

    protocol: Protocol
    source: str
    discovered_ms: int
    signals: tuple[Signal, ...]
    notes: tuple[str, ...] = ()

    @property
    def assets(self) -> list[str]:
        return sorted({s.asset for s in self.signals})


@dataclass(frozen=True)
class Review:
    """A signal left out of the draft, and why: a person decides what it is."""

    asset: str
    sensor: str
    unit: str | None
    address: str
    reason: str


@dataclass(frozen=True)
class Draft:
    """Registry entries for the signals that map cleanly, and the ones that need a person."""

    entries: tuple[RegistryEntry, ...]
    needs_review: tuple[Review, ...]

    @property
    def assets(self) -> list[str]:
        return sorted({e.asset for e in self.entries})


def asset_class_of(asset_name: str) -> str:
    """A guess at the kind of machine from its name: `pump-02` -> `pump`; UNCLASSIFIED when the
    name has no such stem."""
    stem = _NUMBERED.sub("", asset_name)
    return stem if stem and re.fullmatch(r"[A-Za-z0-9_.\-]+", stem) else UNCLASSIFIED


def quantity_for(signal: Signal) -> tuple[str | None, str | None]:
    """(quantity, None), or (None, why a person must decide) for a signal."""
    if signal.problem is not None:
        return None, signal.problem
    if signal.unit is None:
        # A Sparkplug Boolean is a state whether or not it carries a unit; any other signal
        # without a unit could be anything.
        if signal.datatype == "BOOLEAN":
            return "state", None
        return None, "the device reports no unit: set quantity and unit by hand"
    quantity = quantity_of(signal.unit)
    if quantity is None:
        return None, f"unit {signal.unit!r} is not one plantlake knows: set the quantity by hand"
    return quantity, None


def _entry(
    signal: Signal, quantity: str, protocol: Protocol, valid_from: datetime
) -> tuple[RegistryEntry | None, str | None]:
    """The registry entry of a signal, or (None, why the registry refuses its names)."""
    parts = signal.asset.split("/")
    try:
        entry = RegistryEntry(
            asset=signal.asset, sensor=signal.sensor, asset_class=asset_class_of(parts[-1]),
            quantity=quantity, site=parts[0], line=parts[1] if len(parts) > 1 else "",
            valid_from=valid_from, unit=signal.unit, protocol=protocol, address=signal.address,
        )  # fmt: skip
    except ValidationError as exc:
        return None, "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or 'entry'}: "
            + err["msg"].removeprefix("Value error, ")
            for err in exc.errors()
        )
    return entry, None


def draft_registry(discovery: Discovery) -> Draft:
    """Registry entries for every discovered signal whose quantity follows from its unit and
    whose names the registry accepts; the rest as `Review` items. A signal seen twice (a
    rebirth in the listen window) counts once, as last seen."""
    valid_from = datetime.fromtimestamp(discovery.discovered_ms // 1000, tz=UTC)
    latest = {(s.asset, s.sensor): s for s in discovery.signals}
    entries: list[RegistryEntry] = []
    reviews: list[Review] = []
    for _, signal in sorted(latest.items()):
        entry = None
        quantity, reason = quantity_for(signal)
        if quantity is not None:
            entry, reason = _entry(signal, quantity, discovery.protocol, valid_from)
        if entry is not None:
            entries.append(entry)
        else:
            reviews.append(Review(signal.asset, signal.sensor, signal.unit, signal.address,
                                  reason or "needs review"))  # fmt: skip
    return Draft(tuple(entries), tuple(reviews))


def draft_header(discovery: Discovery, draft: Draft, *, import_hint: str) -> str:
    """The comment block that opens a draft file: where it came from, what to check, and each
    signal left out for review."""
    lines = [
        f"DRAFT asset registry: discovered from {discovery.protocol} {discovery.source} "
        f"at {iso_ms(discovery.discovered_ms)}.",
        f"{len(draft.assets)} assets, {len(draft.entries)} sensors drafted; "
        f"{len(draft.needs_review)} signals need review.",
        "Review before loading, then: " + import_hint,
        "- asset_class is guessed from the asset name (pump-02 -> pump): check every one.",
        "- valid_from is the discovery time: set it to when each sensor went into service.",
        "- unit is what the device reports; quantity follows from it.",
    ]
    if draft.needs_review:
        lines.append("Needs review, NOT in the entries (asset / sensor, unit, address: why):")
        lines += [
            f"  {r.asset} / {r.sensor}, unit {r.unit!r}, {r.address}: {r.reason}"
            for r in draft.needs_review
        ]
    if discovery.notes:
        lines.append("Seen but not drafted:")
        lines += [f"  {note}" for note in discovery.notes]
    return "".join(f"# {line}\n" for line in lines)


def draft_yaml(discovery: Discovery, draft: Draft, *, import_hint: str) -> str:
    """The draft registry file: the review header, then the entries in the registry's YAML form."""
    return draft_header(discovery, draft, import_hint=import_hint) + registry_yaml(draft.entries)


def tag_list(discovery: Discovery, draft: Draft) -> dict:
    """What the edge reads, as data: OPC-UA NodeIds or Sparkplug metrics with asset, sensor,
    unit (and EURange or datatype), and the drafted quantity or why it needs review."""
    verdicts = {(e.asset, e.sensor): ("quantity", e.quantity) for e in draft.entries}
    verdicts |= {(r.asset, r.sensor): ("review", r.reason) for r in draft.needs_review}
    latest = {(s.asset, s.sensor): s for s in discovery.signals}
    tags = []
    for key in sorted(latest):
        signal = latest[key]
        tag: dict = {
            "node_id" if discovery.protocol == "opcua" else "metric": signal.address,
            "asset": signal.asset, "sensor": signal.sensor, "unit": signal.unit,
        }  # fmt: skip
        if signal.datatype is not None:
            tag["datatype"] = signal.datatype
        if signal.eu_range is not None:
            tag["eu_range"] = {"low": signal.eu_range[0], "high": signal.eu_range[1]}
        verdict, value = verdicts[key]
        tags.append({**tag, verdict: value})
    return {
        "protocol": discovery.protocol,
        "source": discovery.source,
        "discovered_at": iso_ms(discovery.discovered_ms),
        "tags": tags,
    }


def tag_list_yaml(discovery: Discovery, draft: Draft) -> str:
    what = "the NodeIds" if discovery.protocol == "opcua" else "the Sparkplug metrics"
    header = (
        f"# {what} the edge reads from {discovery.source}, as discovered at "
        f"{iso_ms(discovery.discovered_ms)}: a draft to review with the registry draft.\n"
    )
    return header + yaml.safe_dump(tag_list(discovery, draft), sort_keys=False, allow_unicode=True)


def summary(discovery: Discovery, draft: Draft) -> str:
    return (
        f"{discovery.protocol} {discovery.source}: {len(draft.assets)} assets, "
        f"{len(draft.entries)} sensors drafted, {len(draft.needs_review)} need review"
    )
