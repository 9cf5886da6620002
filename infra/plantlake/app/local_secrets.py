"""The local stack's credentials and the private home they live in: generated once, on first
use, into `$PLANTLAKE_HOME/secrets.env` (mode 0600), never into the repository."""

from __future__ import annotations

import json
import os
import secrets as _secrets
from pathlib import Path

from plantlake.core.config import Settings, load_settings
from plantlake.workbench.auth import hash_password

# The demo's workbench logins (user name: role): `plantlake up` adds them when no user is set.
DEMO_LOGINS = {"planner": "planner", "viewer": "viewer"}


def generate_local_secrets(settings: Settings) -> dict[str, str]:
    """Fresh random credentials for the local stack, as `PLANTLAKE_*` variables.

    Only values not already configured are generated, so a user's own credentials win.
    """
    values: dict[str, str] = {}
    if not settings.s3.access_key:
        values["PLANTLAKE_S3__ACCESS_KEY"] = "plantlake-" + _secrets.token_hex(4)
    if not settings.s3.secret_key.get_secret_value():
        values["PLANTLAKE_S3__SECRET_KEY"] = _secrets.token_urlsafe(24)
    if not settings.mqtt.host_password.get_secret_value():
        values["PLANTLAKE_MQTT__HOST_PASSWORD"] = _secrets.token_urlsafe(18)
    if not settings.opcua.password.get_secret_value():
        values["PLANTLAKE_OPCUA__PASSWORD"] = _secrets.token_urlsafe(18)
    if not settings.mlflow.password.get_secret_value():
        values["PLANTLAKE_MLFLOW__PASSWORD"] = _secrets.token_urlsafe(18)
    if not settings.mlflow.server_secret_key.get_secret_value():
        values["PLANTLAKE_MLFLOW__SERVER_SECRET_KEY"] = _secrets.token_urlsafe(32)
    if settings.s3.managed and not settings.mlflow.s3_access_key:
        values["PLANTLAKE_MLFLOW__S3_ACCESS_KEY"] = "mlflow-" + _secrets.token_hex(4)
    if settings.s3.managed and not settings.mlflow.s3_secret_key.get_secret_value():
        values["PLANTLAKE_MLFLOW__S3_SECRET_KEY"] = _secrets.token_urlsafe(24)
    missing = [
        n.edge_node_id
        for n in settings.mqtt.edge_nodes
        if n.edge_node_id not in settings.mqtt.edge_passwords
    ]
    if missing:
        passwords = {k: v.get_secret_value() for k, v in settings.mqtt.edge_passwords.items()}
        passwords.update({node: _secrets.token_urlsafe(18) for node in missing})
        values["PLANTLAKE_MQTT__EDGE_PASSWORDS"] = json.dumps(passwords)
    if not settings.workbench.session_secret.get_secret_value():
        values["PLANTLAKE_WORKBENCH__SESSION_SECRET"] = _secrets.token_urlsafe(32)
    return values


def generate_workbench_logins(settings: Settings) -> dict[str, str]:
    """Plain passwords of the demo logins (user `planner`, role planner; `viewer`, role viewer)
    when no workbench user is configured; {} otherwise."""
    if settings.workbench.users:
        return {}
    return {name: _secrets.token_urlsafe(12) for name in DEMO_LOGINS}


def workbench_logins_file(home: Path) -> Path:
    """Where the demo logins' plain passwords are kept ({"planner": ..., "viewer": ...})."""
    return home / "workbench-logins.json"


def make_home_private(home: Path) -> None:
    """$PLANTLAKE_HOME holds secrets, plant data and service state: keep it to its owner.

    The folder becomes 0700, and this process (with the services and jobs it starts) creates
    files 0600 and folders 0700 from now on (umask 077), so no other local user reads them.
    """
    os.umask(0o077)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if home.stat().st_uid == os.getuid() and home.stat().st_mode & 0o077:
        home.chmod(0o700)


def ensure_local_secrets(settings: Settings, config_file: Path | None = None) -> Settings:
    """Write generated credentials to the secrets file (mode 0600) and reload settings.

    Generated workbench logins go in as hashes; their passwords go to workbench_logins_file
    (mode 0600), written first so a crash in between regenerates both rather than leaving
    logins nobody knows the password of.
    """
    values = generate_local_secrets(settings)
    logins = generate_workbench_logins(settings)
    if logins:
        users = {name: {"password_hash": hash_password(password), "role": DEMO_LOGINS[name]}
                 for name, password in logins.items()}  # fmt: skip
        values["PLANTLAKE_WORKBENCH__USERS"] = json.dumps(users)
        _write_private(workbench_logins_file(settings.home), json.dumps(logins, indent=2) + "\n")
    if not values:
        return settings
    path = settings.secrets_file
    existing = path.read_text() if path.exists() else ""
    lines = [line for line in existing.splitlines() if line.split("=", 1)[0] not in values]
    # Single quotes: dotenv takes the value literally (JSON's double quotes, a hash's `$`).
    lines += [f"{key}='{value}'" for key, value in values.items()]
    _write_private(path, "\n".join(lines) + "\n")
    return load_settings(config_file, home=settings.home)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)
