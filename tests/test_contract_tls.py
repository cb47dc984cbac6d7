"""Station authentication and transport security: the reference server on HTTPS with test certificates
(a test CA made here with `cryptography`), and the agent's client with a token or a client certificate."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.config import UpstreamConfig
from agent.upstream.client import UpstreamClient, UpstreamRefused, UpstreamUnavailable
from simulators.upstream.server import UpstreamConfig as ServerConfig, UpstreamServer


class ThrowawayCa:
    """A throw-away certificate authority issuing server and station certificates into `folder`."""

    def __init__(self, folder: Path, name: str = "printstation test CA") -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (self._builder(subject, self.key.public_key(), subject)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.pem = folder / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key, issuer: x509.Name) -> x509.CertificateBuilder:
        now = datetime.now(timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(days=1)))

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(),
                                self.cert.subject)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


@pytest.fixture
def ca(tmp_path: Path) -> ThrowawayCa:
    return ThrowawayCa(tmp_path / "ca")


def _server(tmp_path: Path, ca: ThrowawayCa, *, client_ca: bool) -> UpstreamServer:
    cert, key = ca.issue("upstream", server=True)
    server = UpstreamServer(ServerConfig(state_dir=tmp_path / "upstream", jobs=2, tls_cert=cert, tls_key=key,
                                         client_ca=ca.pem if client_ca else None))
    server.start()
    return server


def _lease(server: UpstreamServer, station: str = "st-1", **tls) -> list:
    config = UpstreamConfig(url=server.url, token=tls.pop("token", ""), authority_keys={}, wait_s=0, **tls)
    client = UpstreamClient(config, station)
    try:
        return client.lease(1, 0).jobs
    finally:
        client.close()


def test_a_station_with_a_client_certificate_needs_no_token(tmp_path, ca):
    server = _server(tmp_path, ca, client_ca=True)
    try:
        cert, key = ca.issue("st-1", server=False)
        assert server.url.startswith("https://127.0.0.1:")
        assert len(_lease(server, ca_file=ca.pem, client_cert=cert, client_key=key)) == 1
    finally:
        server.stop()


def test_without_a_client_certificate_the_handshake_is_refused(tmp_path, ca):
    server = _server(tmp_path, ca, client_ca=True)
    try:
        with pytest.raises(UpstreamUnavailable):
            _lease(server, ca_file=ca.pem, token=server.token)
    finally:
        server.stop()


def test_a_certificate_for_another_station_is_forbidden(tmp_path, ca):
    server = _server(tmp_path, ca, client_ca=True)
    try:
        cert, key = ca.issue("st-2", server=False)
        with pytest.raises(UpstreamRefused) as refused:
            _lease(server, "st-1", ca_file=ca.pem, client_cert=cert, client_key=key)
        assert refused.value.status == 403
    finally:
        server.stop()


def test_a_server_certificate_from_an_unknown_ca_is_not_trusted(tmp_path, ca):
    server = _server(tmp_path, ca, client_ca=False)
    try:
        with pytest.raises(UpstreamUnavailable) as unavailable:
            _lease(server, token=server.token)  # the system store does not know the test CA
        assert "CERTIFICATE_VERIFY_FAILED" in str(unavailable.value)
        other = ThrowawayCa(tmp_path / "other", "another CA")
        with pytest.raises(UpstreamUnavailable):
            _lease(server, token=server.token, ca_file=other.pem)
    finally:
        server.stop()


def test_a_bearer_token_over_tls_is_enough_when_no_client_certificate_is_asked(tmp_path, ca):
    server = _server(tmp_path, ca, client_ca=False)
    try:
        assert len(_lease(server, token=server.token, ca_file=ca.pem)) == 1
        with pytest.raises(UpstreamRefused) as refused:
            _lease(server, token="wrong", ca_file=ca.pem)
        assert refused.value.status == 401
    finally:
        server.stop()
