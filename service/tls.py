"""Server TLS and mutual TLS from settings, reloaded when the files change.

GUARDRAIL_TLS_CERT_FILE + GUARDRAIL_TLS_KEY_FILE turn TLS on; adding
GUARDRAIL_TLS_CLIENT_CA_FILE makes every client present a certificate signed
by that CA (mutual TLS). Without a certificate the port is plaintext.

Reload: grpc asks our fetcher for the certificate configuration before each
new TLS handshake (``dynamic_ssl_server_credentials``). The fetcher compares
the files' modification time and size with what it loaded and reads them
again when they differ, so a renewed certificate (cert-manager, a mounted
Secret) serves new connections without a restart; established connections
keep theirs. Every worker builds its own credentials, so each reloads itself.
A half-written or mismatched pair is kept out: when the new files cannot be
read or the key does not parse, the fetcher keeps serving the previous
configuration and logs a warning (grpc itself rejects a key that does not
match its certificate at the next handshake, which then fails; write the
files atomically, e.g. by renaming, as Kubernetes does).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import grpc

from service.errors import SettingsError
from service.settings import Settings
from service.telemetry.logging import get_logger

__all__ = ["CertificateFiles", "server_credentials"]


def _stamp(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size


class CertificateFiles:
    """The PEM files of one server, and grpc's fetcher over them."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.paths = [p for p in (cert, key, client_ca) if p is not None]
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._lock = threading.Lock()  # grpc may call the fetcher from its threads
        self._stamps = self._read_stamps()
        self.config = self._load()
        self.reloads = 0
        self._log = get_logger("service.tls")

    def _read_stamps(self) -> list[tuple[int, int]]:
        return [_stamp(p) for p in self.paths]

    def _load(self) -> grpc.ServerCertificateConfiguration:
        key = self._key.read_bytes()
        cert = self._cert.read_bytes()
        if b"PRIVATE KEY" not in key or b"CERTIFICATE" not in cert:
            raise ValueError("not a PEM certificate and private key")
        ca = self._client_ca.read_bytes() if self._client_ca is not None else None
        if ca is not None and b"CERTIFICATE" not in ca:
            raise ValueError("client CA file holds no PEM certificate")
        return grpc.ssl_server_certificate_configuration([(key, cert)], ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc's fetcher: a new configuration, or None to keep the current one."""
        with self._lock:
            try:
                stamps = self._read_stamps()
                if stamps == self._stamps:
                    return None
                config = self._load()
            except (OSError, ValueError) as exc:
                self._log.warning(
                    "TLS files unreadable; keeping the loaded ones", error=str(exc)
                )
                return None
            self._stamps = stamps
            self.config = config
            self.reloads += 1
            self._log.info("TLS certificate reloaded", reloads=self.reloads)
            return config


def server_credentials(
    settings: Settings,
) -> tuple[grpc.ServerCredentials, CertificateFiles] | None:
    """TLS credentials per settings; None for a plaintext port."""
    cert, key, ca = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
    )
    if cert is None and key is None:
        if ca is not None:
            raise SettingsError(
                "GUARDRAIL_TLS_CLIENT_CA_FILE needs GUARDRAIL_TLS_CERT_FILE and _KEY_FILE"
            )
        return None
    if cert is None or key is None:
        raise SettingsError(
            "set both GUARDRAIL_TLS_CERT_FILE and GUARDRAIL_TLS_KEY_FILE"
        )
    try:
        files = CertificateFiles(cert, key, ca)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"TLS files cannot be loaded: {exc}") from None
    credentials = grpc.dynamic_ssl_server_credentials(
        files.config, files.fetch, require_client_authentication=ca is not None
    )
    return credentials, files
