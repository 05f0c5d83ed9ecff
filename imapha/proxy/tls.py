"""TLS contexts: the proxy's server certificate (reloadable) and backend client options.

Theory of operation
-------------------
Clients get TLS 1.2 or later with the certificate chain and key named in the
config. :class:`ServerTLS` is an old-style context factory (``getContext``)
handed both to the implicit-TLS listeners and to ``startTLS``; Twisted asks
it for the context of every new TLS connection, so :meth:`ServerTLS.load`
(on SIGHUP) swaps the certificate for new connections while open ones keep
theirs. A bad file keeps the running certificate and raises.

Towards a backend, :func:`backend_tls` builds the client options: the
backend's name (or IP address) is verified against ``tls_ca`` (or the
system's CAs) unless ``tls_verify = false``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, cast

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IOpenSSLContextFactory
from zope.interface import implementer  # type: ignore[import-untyped]

from imapha.config.model import BackendRef

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


class TLSConfigError(Exception):
    """A certificate, key or CA file that cannot be used; the text names it."""


def _certificates(path: Path) -> list[ssl.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise TLSConfigError(f"{path}: no PEM certificate in it")
    try:
        return [ssl.Certificate.loadPEM(block) for block in blocks]
    except Exception as exc:
        raise TLSConfigError(f"{path}: not a valid PEM certificate") from exc


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """The client-facing TLS context; :meth:`load` replaces it (see module doc)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._context: SSL.Context | None = None
        self.files: tuple[Path, Path] = (cert, key)
        self.load(cert, key)

    def load(self, cert: Path, key: Path) -> None:
        chain = _certificates(cert)
        try:
            key_pem = key.read_bytes()
        except OSError as exc:
            raise TLSConfigError(f"{key}: cannot read: {exc.strerror or exc}") from exc
        try:
            private = ssl.KeyPair.load(key_pem, 1)  # FILETYPE_PEM
            options = ssl.CertificateOptions(
                privateKey=private.original,
                certificate=chain[0].original,
                extraCertChain=[c.original for c in chain[1:]],
                raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
            )
            context = options.getContext()
        except Exception as exc:
            raise TLSConfigError(f"{cert}, {key}: the key does not fit the certificate "
                                 "or cannot be loaded") from exc
        self._context = context
        self.files = (cert, key)

    def getContext(self) -> SSL.Context:  # the old-style context factory interface
        assert self._context is not None
        return self._context


def backend_tls(ref: BackendRef) -> IOpenSSLClientConnectionCreator:
    """Client TLS options towards one backend (TLS 1.2+, verified unless told not to)."""
    if not ref.tls_verify:
        options: Any = ssl.CertificateOptions(verify=False, raiseMinimumTo=ssl.TLSVersion.TLSv1_2)
        return options  # type: ignore[no-any-return]
    trust: Any
    if ref.tls_ca is not None:
        trust = cast(Any, ssl.trustRootFromCertificates)(_certificates(ref.tls_ca))
    else:
        trust = cast(Any, ssl.platformTrust)()
    return ssl.optionsForClientTLS(ref.address.host, trustRoot=trust,
                                   extraCertificateOptions={
                                       "raiseMinimumTo": ssl.TLSVersion.TLSv1_2})
