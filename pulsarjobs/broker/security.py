"""Token authentication, authorization and TLS for the brokers the launcher starts (the
standalone's, and both of a local cluster's).

Everything lives in the data directory's `security/` folder, made once and reused on later
starts: an HS256 secret and the admin role's token (`--auth`), a CA and a broker certificate
for localhost and 127.0.0.1 (`--tls`). The secret and the private keys are readable by their
owner only. Tokens for other roles are signed with the same secret (`pulsarjobs broker token`,
`pulsarjobs cluster token`). Brokers reach each other with the admin token and trust the CA.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pulsarjobs.errors import ConfigurationError
from pulsarjobs.settings import Settings

ADMIN_ROLE = "admin"  # the broker's super-user: it administers and creates namespaces
SECRET_BYTES = 32  # HS256 keys shorter than 256 bits are refused by the broker (jjwt)
CERTIFICATE_DAYS = 825


@dataclass(frozen=True)
class BrokerSecurity:
    """The security files of one data directory, the broker settings that use them and the
    URLs and settings of a client of those brokers."""

    folder: Path
    auth: bool = False
    tls: bool = False

    @property
    def secret_file(self) -> Path:
        return self.folder / "token-secret.key"

    @property
    def admin_token_file(self) -> Path:
        return self.folder / "admin.token"

    @property
    def ca_file(self) -> Path:
        """The trust file clients need (`PULSARJOBS_TLS_TRUST_FILE`)."""
        return self.folder / "ca.pem"

    @property
    def trust_file(self) -> str | None:
        """What a client of these brokers trusts: the CA with --tls, else nothing."""
        return str(self.ca_file) if self.tls else None

    @property
    def certificate_file(self) -> Path:
        return self.folder / "broker.pem"

    @property
    def key_file(self) -> Path:
        return self.folder / "broker-key.pem"

    def prepare(self) -> None:
        """Make the files that are missing; existing ones are kept (tokens stay valid)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.auth and not self.secret_file.exists():
            write_private(self.secret_file, secrets.token_bytes(SECRET_BYTES))
            self.admin_token_file.unlink(missing_ok=True)  # signed with the old secret
        if self.auth and not self.admin_token_file.exists():
            write_private(self.admin_token_file, self.token(ADMIN_ROLE).encode())
        if self.tls and not self.certificate_file.exists():
            make_certificates(self.ca_file, self.certificate_file, self.key_file)

    def token(self, role: str) -> str:
        """A token that authenticates as `role`, signed with this broker's secret."""
        if not role.strip():
            raise ConfigurationError("a token needs a role name, e.g. `worker`")
        try:
            secret = self.secret_file.read_bytes()
        except OSError:
            raise ConfigurationError(
                f"No token secret at {self.secret_file}: "
                "start the broker or cluster with --auth first."
            ) from None
        import jwt  # here, not above: every command loads this module, few make tokens

        return jwt.encode({"sub": role}, secret, algorithm="HS256")

    def admin_token(self) -> str | None:
        if not self.auth:
            return None
        return self.admin_token_file.read_text().strip()

    def service_url(self, broker_ports: Sequence[int]) -> str:
        """The brokers on these loopback ports (a client fails over between several)."""
        scheme = "pulsar+ssl" if self.tls else "pulsar"
        return f"{scheme}://" + ",".join(f"127.0.0.1:{port}" for port in broker_ports)

    def admin_url(self, web_port: int) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{web_port}"

    def client_settings(self, service_url: str, admin_url: str) -> Settings:
        """How a client reaches these brokers as their super-user (the admin token, the CA)."""
        return Settings(
            service_url=service_url,
            admin_url=admin_url,
            token=self.admin_token(),
            tls_trust_file=self.trust_file,
        )

    def broker_config(self, broker_port: int, web_port: int) -> str:
        """The lines of a broker's config for these options; with TLS its ports serve TLS only."""
        settings = self.broker_settings()
        if self.tls:
            settings |= {"brokerServicePort": "", "webServicePort": ""}
            settings |= {"brokerServicePortTls": str(broker_port)}
            settings |= {"webServicePortTls": str(web_port)}
        if not settings:
            return ""
        return "# Security (--auth, --tls)\n" + "".join(f"{k}={v}\n" for k, v in settings.items())

    def broker_settings(self) -> dict[str, str]:
        """What a broker's config needs for these options, whatever its ports."""
        settings: dict[str, str] = {}
        if self.auth:
            secret = base64.b64encode(self.secret_file.read_bytes()).decode()
            settings |= {
                "authenticationEnabled": "true",
                "authenticationProviders": (
                    "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
                ),
                "tokenSecretKey": f"data:;base64,{secret}",
                "authorizationEnabled": "true",
                "superUserRoles": ADMIN_ROLE,
                # A broker is a client of itself and of the other brokers.
                "brokerClientAuthenticationPlugin": (
                    "org.apache.pulsar.client.impl.auth.AuthenticationToken"
                ),
                "brokerClientAuthenticationParameters": f"token:{self.admin_token()}",
            }
        if self.tls:
            settings |= {
                "tlsCertificateFilePath": str(self.certificate_file),
                "tlsKeyFilePath": str(self.key_file),
                "tlsTrustCertsFilePath": str(self.ca_file),
                "brokerClientTlsEnabled": "true",
                "brokerClientTrustCertsFilePath": str(self.ca_file),
            }
        return settings


def write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def make_certificates(ca_file: Path, certificate_file: Path, key_file: Path) -> None:
    """A private CA and a broker certificate it signs, valid for localhost and 127.0.0.1.
    The broker reads its key as PKCS#8 only."""
    # Here, not above: every command loads this module, only `--tls` starts make certificates.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pulsarjobs local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERTIFICATE_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    write_private(
        key_file,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
