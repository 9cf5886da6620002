"""Shared pieces for the workbench's route tests: a file:// lake in a temp dir seeded with
contract-shaped rows through delta-rs, Settings with two logins, and logging in a TestClient.

Use in a test module::

    from tests.unit.workbench_lake import PASSWORDS, app_client, login, seed, workbench_settings

    @pytest.fixture
    def settings(tmp_path):
        return workbench_settings(tmp_path)

    def test_x(settings):
        seed(settings, "silver.quarantine", [quarantine_row(offset=1)])
        client = app_client(settings)
        csrf = login(client, "planner")       # the session's CSRF token for forms
        client.get("/quarantine")

Times: `T0_MS` is a fixed event time; rows default to it, so tests need no clock.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from plantlake.core.config import LakeSettings, Settings, WorkbenchSettings, WorkbenchUser
from plantlake.lake.arrow_schema import contract_schema
from plantlake.lake.tables import delta_uri, table_ref
from plantlake.workbench.auth import hash_password

PASSWORDS = {"planner": "planner-secret-1", "viewer": "viewer-secret-1"}
ROLES = {"planner": "planner", "viewer": "viewer"}
T0_MS = 1_767_268_800_000  # 2026-01-01T12:00:00Z
TOPIC = "plantlake.telemetry"
# reference.units rows as `plantlake reference load` writes them (pint's factors), for seeding.
UNIT_ROWS = [
    {"unit": "degC", "quantity": "temperature", "canonical_unit": "degC", "scale": 1.0, "offset": 0.0},
    {"unit": "degF", "quantity": "temperature", "canonical_unit": "degC", "scale": 5 / 9,
     "offset": -160 / 9},
    {"unit": "bar", "quantity": "pressure", "canonical_unit": "bar", "scale": 1.0, "offset": 0.0},
    {"unit": "psi", "quantity": "pressure", "canonical_unit": "bar", "scale": 0.0689475729,
     "offset": 0.0},
]  # fmt: skip
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@cache
def _hash(password: str) -> str:
    return hash_password(password)  # scrypt: ~50 ms, so once per password per test session


def workbench_settings(tmp_path: Path) -> Settings:
    """Settings over an empty file:// lake under `tmp_path`, with a planner and a viewer."""
    users = {name: WorkbenchUser(password_hash=_hash(PASSWORDS[name]), role=role)  # type: ignore[arg-type]
             for name, role in ROLES.items()}  # fmt: skip
    return Settings(
        home=tmp_path / "home",
        lake=LakeSettings(root=f"file://{tmp_path}/lake", checkpoint_root=f"file://{tmp_path}/cp"),
        workbench=WorkbenchSettings(users=users, session_secret="test-session-secret"),  # type: ignore[arg-type]
    )


def seed(settings: Settings, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """Append rows (missing columns null) to lake table `name`, creating it with the contract's
    columns, as a Spark job would have written it."""
    ref = table_ref(name)
    schema = contract_schema(ref)
    full = [{column: row.get(column) for column in schema.names} for row in rows]
    write_deltalake(delta_uri(ref.path(settings.lake)), pa.Table.from_pylist(full, schema=schema),
                    mode="append")  # fmt: skip


def _time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def quarantine_row(
    *, offset: int, asset: str = "site1/line1/pump-1", sensor: str = "bearing_temperature",
    value: float | None = 180.0, unit: str | None = "degC", event_time_ms: int = T0_MS,
    rules: Iterable[tuple[str, str]] = (("bearing_temperature_rotating", "value 180 above max 150"),),
    **extra: Any,
) -> dict[str, Any]:  # fmt: skip
    """A silver.quarantine row as silver writes it: the reading as sent, failed rules (name,
    reason), Kafka and edge lineage; review columns null unless given in `extra`."""
    return {
        "schema_version": 1, "asset": asset, "sensor": sensor, "value": value, "unit": unit,
        "quality": "Good", "event_time_ms": event_time_ms, "receive_time_ms": event_time_ms + 50,
        "source_protocol": "opcua", "source_node": "edge-a", "sequence": offset,
        "event_time": _time(event_time_ms), "receive_time": _time(event_time_ms + 50),
        "asset_class": "pump",
        "failed_rules": [{"rule": r, "action": "quarantine", "reason": why} for r, why in rules],
        "kafka_topic": TOPIC, "kafka_partition": 0, "kafka_offset": offset,
        "kafka_timestamp": _time(event_time_ms + 100), "edge_instance": "edge-a-1",
        "edge_seq": 1000 + offset, "bronze_ingest_time": _time(event_time_ms + 200),
        "quarantined_at": _time(event_time_ms + 300), **extra,
    }  # fmt: skip


def telemetry_row(
    *, event_time_ms: int, value: float, asset: str = "site1/line1/pump-1",
    sensor: str = "bearing_temperature", unit: str = "degC", offset: int = 0,
) -> dict[str, Any]:  # fmt: skip
    """A silver.telemetry row (canonical unit)."""
    return {
        "asset": asset, "sensor": sensor, "asset_class": "pump", "quantity": "temperature",
        "value": value, "unit": unit, "source_value": value, "source_unit": unit,
        "quality": "Good", "event_time": _time(event_time_ms), "event_time_ms": event_time_ms,
        "receive_time": _time(event_time_ms + 50), "source_protocol": "opcua",
        "source_node": "edge-a", "sequence": offset, "dq_warnings": [], "kafka_topic": TOPIC,
        "kafka_partition": 0, "kafka_offset": offset,
    }  # fmt: skip


def app_client(settings: Settings) -> TestClient:
    """A TestClient of the workbench over `settings`; redirects are not followed, so tests see
    them."""
    from plantlake.workbench.server import create_app

    return TestClient(create_app(settings), follow_redirects=False)


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries in its forms."""
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def login(client: TestClient, user: str) -> str:
    """Log `user` in (password from PASSWORDS); the session's CSRF token for later forms."""
    token = csrf_of(client.get("/login").text)
    response = client.post(
        "/login", data={"username": user, "password": PASSWORDS[user], "csrf_token": token}
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/quarantine").text)


def form_fields(html: str, action: str) -> list[dict[str, str]]:
    """The hidden fields of each form posting to `action` on a page, in page order."""
    forms = re.findall(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    hidden = r'<input type="hidden" name="([^"]+)" value="([^"]*)"'
    return [{k: html_lib.unescape(v) for k, v in re.findall(hidden, f)} for f in forms]
