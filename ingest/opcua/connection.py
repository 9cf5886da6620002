"""Opening an OPC-UA session: security policy, client certificate and user login (ingest, I/O adapter)."""

from __future__ import annotations

import socket
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import cert_gen, security_policies
from asyncua.ua import uaerrors
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantlake.config import OpcUaSettings
from plantlake.errors import ConfigError, SourceError

CLIENT_URI = "urn:plantlake:edge:opcua"

# Refusals that retrying cannot fix: wrong login, no such security, certificate rejected.
_PERMANENT = (
    uaerrors.BadUserAccessDenied,
    uaerrors.BadIdentityTokenRejected,
    uaerrors.BadIdentityTokenInvalid,
    uaerrors.BadSecurityPolicyRejected,
    uaerrors.BadSecurityModeRejected,
    uaerrors.BadCertificateInvalid,
    uaerrors.BadCertificateUntrusted,
    uaerrors.BadSecurityChecksFailed,
)


def parse_security(
    security: str,
) -> tuple[type[security_policies.SecurityPolicy], ua.MessageSecurityMode] | None:
    """`"Basic256Sha256_SignAndEncrypt"` -> (policy, mode); `"none"` -> None (dev profile only)."""
    if security.strip().lower() in ("", "none"):
        return None
    policy_name, _, mode_name = security.partition("_")
    policy = getattr(security_policies, f"SecurityPolicy{policy_name}", None)
    mode = (
        getattr(ua.MessageSecurityMode, mode_name, None)
        if mode_name in ("Sign", "SignAndEncrypt")
        else None
    )
    if policy is None or mode is None:
        raise ConfigError(
            f"Unknown OPC-UA security {security!r} (settings opcua.security).",
            hint="Use e.g. Basic256Sha256_SignAndEncrypt, or none against a dev-profile server.",
        )
    return policy, mode


async def self_signed_certificate(
    folder: Path, uri: str, usage: ExtendedKeyUsageOID
) -> tuple[Path, Path]:
    """A self-signed certificate (DER) and private key (PEM) in `folder`, generated on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / "cert.der", folder / "key.pem"
    await cert_gen.setup_self_signed_certificate(
        key, cert, uri, socket.gethostname(), [usage], {"organizationName": "plantlake"}
    )
    key.chmod(0o600)
    return cert, key


async def client_certificate(pki: Path) -> tuple[Path, Path]:
    """The edge client's certificate and key, generated on first use."""
    return await self_signed_certificate(
        pki / "opcua-client", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH
    )


async def connect(opcua: OpcUaSettings, pki: Path, *, timeout_s: float = 10.0) -> Client:
    """A connected, activated session. Raises SourceError when the server refuses the login or
    the security (retrying will not help); OSError/TimeoutError/UaError when it is unreachable."""
    client = Client(opcua.endpoint, timeout=timeout_s, watchdog_intervall=30.0)
    client.application_uri = CLIENT_URI
    client.name = client.description = "plantlake edge"
    password = opcua.password.get_secret_value()
    security = parse_security(opcua.security)
    try:
        if security is not None:
            if not password:
                raise ConfigError(
                    "No OPC-UA password (settings opcua.password).",
                    hint="Run `plantlake up` once to generate local secrets, or set PLANTLAKE_OPCUA__PASSWORD.",
                )
            policy, mode = security
            cert, key = await client_certificate(pki)
            await client.set_security(policy, str(cert), str(key), mode=mode)
        if password:
            client.set_user(opcua.username)
            client.set_password(password)
        await client.connect()
    except _PERMANENT as exc:
        raise SourceError(
            f"OPC-UA server {opcua.endpoint} refused the session: {type(exc).__name__}.",
            hint="Check opcua.username/password and opcua.security against the server.",
        ) from exc
    except ua.UaError as exc:
        if "No matching endpoints" in str(exc):
            raise SourceError(
                f"OPC-UA server {opcua.endpoint} offers no endpoint with security {opcua.security!r}.",
                hint="Match opcua.security to the server's security policies.",
            ) from exc
        raise
    return client
