"""Opening an OPC-UA session: security policy, client certificate and user login (ingest, I/O adapter)."""

from __future__ import annotations

import hashlib
import logging
import socket
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import cert_gen, security_policies
from asyncua.ua import uaerrors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantlake.core.config import OpcUaSettings
from plantlake.core.errors import ConfigError, SourceError

CLIENT_URI = "urn:plantlake:edge:opcua"
log = logging.getLogger(__name__)

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
    folder: Path, uri: str, usage: x509.ObjectIdentifier
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


def _leading_certificate(der: bytes) -> bytes:
    """The first certificate of a DER blob a server may send with its chain appended (the outer
    SEQUENCE's two length bytes say where it ends)."""
    return der[: int.from_bytes(der[2:4], "big") + 4]


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def pinned_certificate_path(opcua: OpcUaSettings, pki: Path) -> Path:
    """The server certificate the client trusts: the configured one, else the one it pinned on
    first use for this endpoint."""
    if opcua.server_certificate is not None:
        return opcua.server_certificate
    name = hashlib.sha256(opcua.endpoint.encode()).hexdigest()[:16]
    return pki / "opcua-trusted" / f"{name}.der"


async def _trusted_server_certificate(client: Client, opcua: OpcUaSettings, pki: Path,
                                      policy, mode) -> bytes:  # fmt: skip
    """The server certificate to open the secure channel with, checked against the pin before
    any credential is sent: the server's offer over an unsecured channel (as asyncua does)
    must be the pinned certificate. The first connection to an endpoint without a configured
    certificate pins what it is offered (trust on first use), and says so."""
    endpoints = await client.connect_and_get_server_endpoints()
    offered = _leading_certificate(
        Client.find_endpoint(endpoints, mode, policy.URI).ServerCertificate
    )
    pin = pinned_certificate_path(opcua, pki)
    if not pin.exists():
        if opcua.server_certificate is not None:
            raise ConfigError(f"opcua.server_certificate {pin} does not exist.")
        pin.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pin.write_bytes(offered)
        log.warning("OPC-UA %s: trusting its certificate on first use (sha256 %s), pinned in %s",
                    opcua.endpoint, fingerprint(offered), pin)  # fmt: skip
        return offered
    pinned = pin.read_bytes()
    if pinned.startswith(b"-----BEGIN"):
        pinned = x509.load_pem_x509_certificate(pinned).public_bytes(serialization.Encoding.DER)
    if fingerprint(offered) != fingerprint(pinned):
        raise SourceError(
            f"OPC-UA server {opcua.endpoint} presented certificate sha256 {fingerprint(offered)}, "
            f"not the trusted one ({fingerprint(pinned)}, {pin}); no credentials were sent.",
            hint="If the server's certificate was replaced on purpose, put the new one in "
            f"opcua.server_certificate (or delete {pin} to trust the next one offered).",
        )
    return pinned


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
            server = await _trusted_server_certificate(client, opcua, pki, policy, mode)
            await client.set_security(policy, str(cert), str(key), server_certificate=server,
                                      mode=mode)  # fmt: skip
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
