"""The asset registry as a site writes it: one validated entry per (asset, sensor, validity
interval), in CSV or YAML, with a published JSON schema (core layer: data only, no I/O).

A site owns this file. `plantlake reference import` loads it into reference.asset_registry,
`plantlake reference export` writes the lake's registry back in the same shape, the discovery
commands write drafts of it, and the simulator describes its own plant in it. Parsing takes the
file's text and returns entries or raises one `RegistryFileError` that names every bad line.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plantlake.core.errors import ConfigError
from plantlake.core.units import KNOWN_QUANTITIES

Protocol = Literal["opcua", "modbus", "sparkplug", "daq"]

# The columns of the CSV form, in order; YAML uses the same keys.
FIELDS: tuple[str, ...] = (
    "asset", "sensor", "asset_class", "quantity", "site", "line", "valid_from", "valid_to",
    "unit", "protocol", "address",
)  # fmt: skip
# The only format version so far; a YAML file may say `version: 1`.
VERSION = 1
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NAME = r"^[A-Za-z0-9_.\-]+$"
_HINT = "Fix the lines named above and import the file again (every problem is listed)."
_ROWS_HINT = "Import a corrected registry file (plantlake reference import) to replace these rows."


class RegistryEntry(BaseModel):
    """One sensor of one asset over one validity interval [valid_from, valid_to)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    asset: str = Field(
        description="Asset path: site/line/asset (ISA-95 style; more levels may follow the line).",
        pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+){2,}$",
        examples=["plant1/line1/pump-02"],
    )
    sensor: str = Field(
        description="Sensor name as readings carry it; window features are sensor.feature "
        "(vibration.rms, vibration.band_10_100).",
        pattern=_NAME,
    )
    asset_class: str = Field(
        description="Kind of machine the sensor sits on: pump, motor, press, ... A sensor "
        "remounted on another machine gets a new entry from the move on.",
        pattern=_NAME,
    )
    quantity: str = Field(
        description="What the sensor measures (the quantities plantlake knows): ratio and "
        "energy are the unitless window features (crest factor, FFT band energies).",
        json_schema_extra={"enum": list(KNOWN_QUANTITIES)},
    )
    site: str = Field(description="The site: the asset path's first level.", pattern=_NAME)
    line: str = Field(description="The line: the asset path's second level.", pattern=_NAME)
    valid_from: datetime = Field(
        description="Start of validity (inclusive), ISO 8601 (UTC when no offset): "
        "2026-01-08T00:00:00Z."
    )
    valid_to: datetime | None = Field(
        None,
        description="End of validity (exclusive), ISO 8601; empty = still valid. The next "
        "interval of the same asset and sensor may start exactly here.",
    )
    unit: str | None = Field(
        None, description="The unit the device reports (UNECE code or symbol), for review."
    )
    protocol: Protocol | None = Field(
        None,
        description="How the edge reads this sensor; daq = a window feature the edge computes "
        "from its local vibration acquisition.",
    )
    address: str | None = Field(
        None,
        description="Device-side address: OPC-UA NodeId (ns=2;s=... or nsu=<uri>;s=...), Modbus "
        "unit:table:address (1:holding:0), Sparkplug group/edge_node/device/metric.",
        examples=[
            "ns=2;s=plant1/line1/press-01/hydraulic_pressure",
            "2:holding:4",
            "plant1/line1-gateway/pump-02/flow",
        ],  # fmt: skip
    )

    @field_validator("valid_from", "valid_to", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # pydantic reads a number as Unix seconds: 20260108 would silently become 1970-08-23.
        text = str(value).strip() if isinstance(value, int | float | str) else None
        if text is not None and text.lstrip("+-").replace(".", "", 1).isdigit():
            raise ValueError(f"expected an ISO 8601 timestamp (2026-01-08T00:00:00Z), got {text}")
        return value

    @field_validator("valid_from", "valid_to")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value.astimezone(UTC) if value is not None else None
        return value.replace(tzinfo=UTC)

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, value: str) -> str:
        if value not in KNOWN_QUANTITIES:
            raise ValueError(f"unknown quantity {value!r}; known: {', '.join(KNOWN_QUANTITIES)}")
        return value

    @field_validator("valid_to", "unit", "protocol", "address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent(self) -> RegistryEntry:
        if not self.asset.startswith(f"{self.site}/{self.line}/"):
            raise ValueError(f"asset {self.asset!r} does not start with site/line "
                             f"{self.site}/{self.line}/")  # fmt: skip
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"valid_to {_iso(self.valid_to)} is not after valid_from "
                             f"{_iso(self.valid_from)}")  # fmt: skip
        return self

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The registry's key: (asset, sensor, valid_from)."""
        return self.asset, self.sensor, self.valid_from


# -- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryProblem:
    """One thing wrong with a registry file: the lines it concerns (1-based physical lines of
    the file, or row numbers for table rows), the field when one is to blame, and what."""

    lines: tuple[int, ...]
    field: str | None
    message: str

    def describe(self, source: str, *, noun: str = "line") -> str:
        numbers = " and ".join(str(n) for n in self.lines)
        where = f"{source} {noun}{'s' if len(self.lines) > 1 else ''} {numbers}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class RegistryFileError(ConfigError):
    """A registry file (or the table's rows) failed validation; `problems` holds every one."""

    def __init__(self, source: str, problems: Iterable[RegistryProblem], *, noun: str = "line"):
        self.source = source
        self.problems = tuple(sorted(problems, key=lambda p: p.lines))
        count = len(self.problems)
        heading = f"{source}: {count} problem{'s' if count != 1 else ''} in the asset registry:"
        body = "".join(f"\n  {p.describe(source, noun=noun)}" for p in self.problems)
        hint = _HINT if noun == "line" else _ROWS_HINT
        super().__init__(heading + body, hint=hint)


def _entry_problems(line: int, exc: ValidationError) -> list[RegistryProblem]:
    problems = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            message = "required, but missing or empty"
        problems.append(RegistryProblem((line,), field, message))
    return problems


def _validate(
    located: Iterable[tuple[int, Mapping[str, Any]]],
) -> tuple[list[tuple[int, RegistryEntry]], list[RegistryProblem]]:
    """Validate each (line, mapping); returns the good entries with their lines and the problems."""
    entries: list[tuple[int, RegistryEntry]] = []
    problems: list[RegistryProblem] = []
    for line, data in located:
        try:
            entries.append((line, RegistryEntry.model_validate(data)))
        except ValidationError as exc:
            problems += _entry_problems(line, exc)
    return entries, problems


def _end(entry: RegistryEntry) -> datetime:
    return entry.valid_to if entry.valid_to is not None else datetime.max.replace(tzinfo=UTC)


def _interval(entry: RegistryEntry) -> str:
    return f"[{_iso(entry.valid_from)}, {_iso(entry.valid_to) or 'open'})"


def file_problems(located: Iterable[tuple[int, RegistryEntry]]) -> list[RegistryProblem]:
    """Whole-file rules over valid entries: each key (asset, sensor, valid_from) once, and per
    (asset, sensor) no two validity intervals overlap (touching is fine; two open ones overlap)."""
    problems: list[RegistryProblem] = []
    by_signal: dict[tuple[str, str], list[tuple[int, RegistryEntry]]] = defaultdict(list)
    for line, entry in located:
        by_signal[(entry.asset, entry.sensor)].append((line, entry))
    for (asset, sensor), members in by_signal.items():
        members.sort(key=lambda m: (m[1].valid_from, m[0]))
        # The interval reaching furthest so far: a long one may overlap several after it.
        reach: tuple[int, RegistryEntry] | None = None
        for line, entry in members:
            if reach is not None:
                first, earlier = reach
                if earlier.valid_from == entry.valid_from:
                    problems.append(RegistryProblem((first, line), None, (
                        f"{asset} {sensor} from {_iso(entry.valid_from)} is listed twice "
                        "(asset, sensor and valid_from must be unique)")))  # fmt: skip
                elif _end(earlier) > entry.valid_from:
                    problems.append(RegistryProblem((first, line), None, (
                        f"{asset} {sensor}: validity {_interval(earlier)} overlaps "
                        f"{_interval(entry)}; end the earlier one where the later begins")))  # fmt: skip
            if reach is None or _end(entry) > _end(reach[1]):
                reach = (line, entry)
    return problems


def merge_conflicts(
    current: Iterable[RegistryEntry], incoming: Sequence[tuple[int, RegistryEntry]]
) -> list[RegistryProblem]:
    """What a file's entries (with their lines) would break once merged by key into the rows a
    registry table already holds: an interval overlapping a row the file leaves as it is.

    Problems among the file's own entries are reported as `file_problems` reports them; two
    rows of the table alone are not the file's to answer for."""
    keys = {entry.key for _, entry in incoming}
    # Table rows take lines 0, -1, -2, ...: never a line of the file.
    kept = [(-i, entry) for i, entry in enumerate(current) if entry.key not in keys]
    problems = []
    for problem in file_problems([*kept, *incoming]):
        lines = tuple(line for line in problem.lines if line > 0)
        if not lines:
            continue
        if len(lines) < len(problem.lines):
            message = (f"{problem.message} (the other interval is a row reference.asset_registry "
                       "already has: list it in the file with its new valid_to to end it)")  # fmt: skip
            problem = RegistryProblem(lines, problem.field, message)
        problems.append(problem)
    return problems


def _checked(
    located: list[tuple[int, RegistryEntry]], problems: list[RegistryProblem], source: str
) -> list[tuple[int, RegistryEntry]]:
    problems = problems + file_problems(located)
    if problems:
        raise RegistryFileError(source, problems)
    return located


# -- reading -------------------------------------------------------------------------------------


def parse_registry_csv(text: str, *, source: str) -> list[RegistryEntry]:
    """Entries of a registry CSV, in file order (see `located_registry_csv`)."""
    return [entry for _, entry in located_registry_csv(text, source=source)]


def parse_registry_yaml(text: str, *, source: str) -> list[RegistryEntry]:
    """Entries of a registry YAML file, in file order (see `located_registry_yaml`)."""
    return [entry for _, entry in located_registry_yaml(text, source=source)]


def located_registry_csv(text: str, *, source: str) -> list[tuple[int, RegistryEntry]]:
    """(line, entry) of a registry CSV (header line with exactly the columns of FIELDS, in any order;
    an empty cell is a missing value), in file order.

    `source` names the file in messages. Raises RegistryFileError (a ConfigError) listing every
    problem with its physical line number, the header being line 1.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, str]]] = []
    problems: list[RegistryProblem] = []
    while True:
        line = reader.line_num + 1  # where the next record starts (a quoted cell may span lines)
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RegistryProblem((line,), None, f"not valid CSV: {exc}"))
            break
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip() for cell in record]
            problems += _header_problems(header, line)
            if problems:
                raise RegistryFileError(source, problems)
            continue
        if len(record) != len(header):
            problems.append(RegistryProblem(
                (line,), None, f"{len(record)} cells where the header has {len(header)}"))  # fmt: skip
            continue
        rows.append(
            (line, {k: v.strip() for k, v in zip(header, record, strict=True) if v.strip()})
        )
    if header is None and not problems:
        problems.append(RegistryProblem((1,), None, f"no header line; expected {','.join(FIELDS)}"))
    entries, bad = _validate(rows)
    return _checked(entries, problems + bad, source)


def _header_problems(header: list[str], line: int) -> list[RegistryProblem]:
    problems = []
    unknown = [c for c in header if c not in FIELDS]
    missing = [c for c in FIELDS if c not in header]
    repeated = sorted({c for c in header if header.count(c) > 1})
    if unknown:
        problems.append(RegistryProblem((line,), None, f"unknown columns {unknown}"))
    if missing:
        problems.append(RegistryProblem((line,), None, f"missing columns {missing}"))
    if repeated:
        problems.append(RegistryProblem((line,), None, f"repeated columns {repeated}"))
    if problems:
        problems.append(RegistryProblem((line,), None, f"the header must be {','.join(FIELDS)}"))
    return problems


def located_registry_yaml(text: str, *, source: str) -> list[tuple[int, RegistryEntry]]:
    """(line, entry) of a registry YAML file (`version: 1` optional, `entries:` a list of mappings
    with the keys of FIELDS; optional keys may be left out), in file order.

    Raises ConfigError when the text is not YAML, else RegistryFileError listing every problem
    with the line its entry starts on.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}", hint=_HINT) from exc
    if not isinstance(data, Mapping) or not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{source}: expected a mapping with an 'entries' list, got {data!r}.")
    keys = {str(k.value): (k.start_mark.line + 1, v) for k, v in root.value}
    problems: list[RegistryProblem] = []
    for key in data.keys() - {"version", "entries"}:
        problems.append(RegistryProblem((keys[str(key)][0],), str(key), "unknown key"))
    version = data.get("version", VERSION)
    if version != VERSION or isinstance(version, bool):
        problems.append(RegistryProblem(
            (keys["version"][0],), "version", f"unknown version {version!r}; expected {VERSION}"))  # fmt: skip
    items = data.get("entries")
    if not isinstance(items, list):
        where = keys["entries"][0] if "entries" in keys else 1
        problems.append(RegistryProblem((where,), "entries", "expected a list of entries"))
        raise RegistryFileError(source, problems)
    lines = [node.start_mark.line + 1 for node in keys["entries"][1].value]
    located: list[tuple[int, Mapping[str, Any]]] = []
    for line, item in zip(lines, items, strict=True):
        if isinstance(item, Mapping):
            located.append((line, item))
        else:
            problems.append(RegistryProblem((line,), None, f"expected a mapping, got {item!r}"))
    entries, bad = _validate(located)
    return _checked(entries, problems + bad, source)


# -- writing -------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str:
    """ISO 8601 in UTC with Z; empty for None."""
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _sorted(entries: Iterable[RegistryEntry]) -> list[RegistryEntry]:
    return sorted(entries, key=lambda e: e.key)


def registry_csv(entries: Iterable[RegistryEntry]) -> str:
    """The export CSV: the FIELDS header, entries sorted by (asset, sensor, valid_from),
    timestamps ISO 8601 UTC with Z, empty cells for missing values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for entry in _sorted(entries):
        row = [getattr(entry, f) for f in FIELDS]
        writer.writerow(_iso(v) if isinstance(v, datetime) else "" if v is None else v for v in row)
    return out.getvalue()


class _Dumper(yaml.SafeDumper):
    """Writes timestamps as plain ISO 8601 with Z, which YAML reads back as timestamps, and
    repeats shared values rather than writing anchors a person would have to follow."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(
    datetime,
    lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:timestamp", _iso(value)),
)


def registry_yaml(entries: Iterable[RegistryEntry]) -> str:
    """The export YAML: `version` and `entries`, sorted by (asset, sensor, valid_from), every key
    written (null when missing), timestamps ISO 8601 UTC with Z."""
    body = [{f: getattr(entry, f) for f in FIELDS} for entry in _sorted(entries)]
    return yaml.dump({"version": VERSION, "entries": body}, Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True, width=100)  # fmt: skip


# -- table rows ----------------------------------------------------------------------------------


def entry_rows(entries: Iterable[RegistryEntry]) -> list[dict[str, Any]]:
    """Rows for reference.asset_registry: keys FIELDS, timestamps tz-aware UTC datetimes."""
    return [{f: getattr(entry, f) for f in FIELDS} for entry in entries]


def entries_from_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str = "reference.asset_registry"
) -> list[RegistryEntry]:
    """Entries from table rows (e.g. `row.asDict()` after `collect()`), in row order.

    Naive timestamps are UTC; columns outside FIELDS are ignored and absent optional ones are
    missing values. Raises RegistryFileError naming every bad row (1-based).
    """
    located = [(i, {k: row[k] for k in FIELDS if k in row}) for i, row in enumerate(rows, start=1)]
    entries, problems = _validate(located)
    if problems:
        raise RegistryFileError(source, problems, noun="row")
    return [entry for _, entry in entries]


# -- the published schema ------------------------------------------------------------------------

_FILE_DESCRIPTION = (
    "The asset registry a site owns: which asset class and quantity each sensor is, over which "
    "validity interval [valid_from, valid_to). YAML form: this object. CSV form: a header line "
    f"with exactly the columns {','.join(FIELDS)} (any order), then one entry per line, an empty "
    "cell being a missing value. Per asset and sensor the intervals may touch but never overlap, "
    "so at most one is open (empty valid_to). A sensor remounted on another machine is two "
    "entries: the old one ends (valid_to) at the instant the new one begins (valid_from). The "
    "asset path must start with site/line/."
)


def registry_json_schema() -> dict[str, Any]:
    """The JSON schema of a registry file (YAML form; each CSV row is one `entries` item).

    Published as infra/schemas/asset_registry.schema.json; rules across entries (unique keys,
    no overlaps) and the asset-under-site/line rule are in the descriptions only.
    """
    entry = RegistryEntry.model_json_schema()
    definitions = entry.pop("$defs", None)
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "plantlake asset registry",
        "description": _FILE_DESCRIPTION,
        "type": "object",
        "properties": {
            "version": {"const": VERSION, "description": "Format version; 1 when left out."},
            "entries": {
                "type": "array",
                "description": "One entry per asset, sensor and validity interval.",
                "items": entry,
            },
        },
        "required": ["entries"],
        "additionalProperties": False,
    }
    if definitions:
        schema["$defs"] = definitions
    return schema
