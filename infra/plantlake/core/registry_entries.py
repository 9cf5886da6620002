"""The asset registry as a site writes it: one validated entry per (asset, sensor, validity
interval), in CSV or YAML, with a published JSON schema (core layer: data only, no I/O).

A site owns this file. `plantlake reference import` loads it into reference.asset_registry,
`plantlake reference export` writes the lake's registry back in the same shape, the discovery
commands write drafts of it, and the simulator describes its own plant in it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plantlake.core.units import KNOWN_QUANTITIES

Protocol = Literal["opcua", "modbus", "sparkplug", "daq"]

# The columns of the CSV form, in order; YAML uses the same keys.
FIELDS: tuple[str, ...] = (
    "asset", "sensor", "asset_class", "quantity", "site", "line", "valid_from", "valid_to",
    "unit", "protocol", "address",
)  # fmt: skip

_NAME = r"^[A-Za-z0-9_.\-]+$"


class RegistryEntry(BaseModel):
    """One sensor of one asset over one validity interval [valid_from, valid_to)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    asset: str = Field(
        description="Asset path: site/line/asset (ISA-95 style; more levels may follow the line).",
        pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+){2,}$",
    )
    sensor: str = Field(
        description="Sensor name as readings carry it; window features are sensor.feature "
        "(vibration.rms, vibration.band_10_100).",
        pattern=_NAME,
    )
    asset_class: str = Field(description="Kind of machine: pump, motor, press, ...", pattern=_NAME)
    quantity: str = Field(description=f"What the sensor measures: one of {list(KNOWN_QUANTITIES)}.")
    site: str = Field(pattern=_NAME)
    line: str = Field(pattern=_NAME)
    valid_from: datetime = Field(description="Start of validity, ISO 8601 (UTC when no offset).")
    valid_to: datetime | None = Field(
        None, description="End of validity (exclusive); empty = still valid."
    )
    unit: str | None = Field(
        None, description="The unit the device reports (UNECE code or symbol), for review."
    )
    protocol: Protocol | None = Field(None, description="How the edge reads this sensor.")
    address: str | None = Field(
        None,
        description="Device-side address: OPC-UA NodeId (ns=2;s=...), Modbus unit:table:address "
        "(1:holding:0), Sparkplug group/edge_node/device/metric.",
    )

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

    @field_validator("unit", "address", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent(self) -> RegistryEntry:
        if not self.asset.startswith(f"{self.site}/{self.line}/"):
            raise ValueError(f"asset {self.asset!r} does not start with site/line "
                             f"{self.site}/{self.line}/")  # fmt: skip
        if self.valid_to is not None and self.valid_to <= self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is not after valid_from {self.valid_from}")
        return self

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The registry's key: (asset, sensor, valid_from)."""
        return self.asset, self.sensor, self.valid_from
