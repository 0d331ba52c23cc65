"""The launcher's security files: tokens the broker accepts, a certificate clients can check."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import jwt
import pytest
from cryptography import x509

from pulsarjobs.broker.security import ADMIN_ROLE, SECRET_BYTES, BrokerSecurity
from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings
from pulsarjobs.transport.access import role_of


def test_auth_makes_a_long_secret_and_an_admin_token_signed_with_it(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path / "security", auth=True)
    security.prepare()
    secret = security.secret_file.read_bytes()
    assert len(secret) >= SECRET_BYTES
    admin = security.admin_token()
    assert admin is not None
    assert jwt.decode(admin, secret, algorithms=["HS256"])["sub"] == ADMIN_ROLE
    assert role_of(security.token("worker")) == "worker"
    for private in (security.secret_file, security.admin_token_file):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    settings = security.broker_settings()
    assert settings["superUserRoles"] == ADMIN_ROLE
    assert settings["brokerClientAuthenticationParameters"] == f"token:{admin}"


def test_a_second_prepare_keeps_the_secret_so_tokens_stay_valid(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path, auth=True)
    security.prepare()
    token = security.token("worker")
    security.prepare()
    assert security.token("worker") == token


def test_a_token_without_a_secret_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--auth"):
        BrokerSecurity(tmp_path, auth=True).token("worker")


def test_tls_makes_a_certificate_for_localhost_signed_by_the_ca(tmp_path: Path) -> None:
    security = BrokerSecurity(tmp_path, tls=True)
    security.prepare()
    ca = x509.load_pem_x509_certificate(security.ca_file.read_bytes())
    certificate = x509.load_pem_x509_certificate(security.certificate_file.read_bytes())
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert b"BEGIN PRIVATE KEY" in security.key_file.read_bytes()  # PKCS#8, as the broker wants
    assert stat.S_IMODE(security.key_file.stat().st_mode) == 0o600


def test_tls_hostname_validation_reads_as_a_boolean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSARJOBS_TLS_VALIDATE_HOSTNAME", "false")
    assert Settings.from_env().tls_validate_hostname is False
    monkeypatch.setenv("PULSARJOBS_TLS_VALIDATE_HOSTNAME", "maybe")
    with pytest.raises(ConfigurationError, match="true or false"):
        Settings.from_env()
