"""A token-protected XRootD origin on loopback: ``root://`` (the ``ztn`` protocol, over TLS) and ``https://``, tokens only.

The server is Debian's ``xrootd-server`` with ``xrootd-scitokens-plugins``
(installed as the XRootD tests install the server, :func:`provisioned_scitokens`).
Its TLS certificate comes from an authority of the tests (:mod:`tls_certificates`),
which the clients trust through ``X509_CERT_FILE`` (the XRootD client) and
``SSL_CERT_FILE`` (aiohttp). The tokens are WLCG profile JWTs signed (ES256,
PyJWT) by a local issuer. The issuer's public key is put in the SciTokens
library's key cache of the server (``$XDG_CACHE_HOME/scitokens``), where the
library keeps keys it fetched, so it never needs to fetch them from the
issuer's URL; the tokens are checked as any other: signature, expiry, issuer,
audience, and the path of the scope.
"""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from provisioning import apt_install
from tls_certificates import make_certificates
from xrootd_servers import free_port, provisioned_xrootd, xrootd

#: the issuer the origin trusts; never contacted (its key is in the server's key cache)
ISSUER = "https://127.0.0.1:1/agcframe-test-issuer"
#: the audience every WLCG token may carry
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
_KEY_ID = "agcframe-test"


def provisioned_scitokens() -> str | None:
    """Why the token origin cannot run here, or ``None`` once xrootd and its SciTokens plugin are installed."""
    reason = provisioned_xrootd()
    if reason is not None:
        return reason
    if not _plugin_installed():
        if os.environ.get("CI") != "true" and os.environ.get("AGCFRAME_PROVISION_XROOTD") != "1":
            return "the xrootd SciTokens plugin is not installed; set AGCFRAME_PROVISION_XROOTD=1 (root, Debian) to install it"
        if os.geteuid() != 0:
            return "installing xrootd-scitokens-plugins needs root and apt-get"
        apt_install("xrootd-scitokens-plugins", needed=lambda: not _plugin_installed())
    try:
        import jwt  # noqa: F401
    except ImportError:
        return "the tests sign tokens with PyJWT; pip install -e '.[test]'"
    return None


def _plugin_installed() -> bool:
    folders = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib")
    return any(next(Path(folder).glob("libXrdAccSciTokens-*.so"), None) is not None for folder in folders)


@dataclass(frozen=True)
class TokenOrigin:
    """The running origin: its URLs, the tokens made for it (files, mode 0600), and the clients' trust settings."""

    root_url: str
    https_url: str
    tokens: dict[str, Path]
    trust: dict[str, str]


@contextmanager
def token_origin(served: Path) -> Iterator[TokenOrigin]:
    """An origin exporting ``served/data`` to bearers of a token of the issuer with ``storage.read`` of the path.

    ``tokens``: ``valid`` (``storage.read:/``), ``other-path`` (``storage.read:/other``), ``expired`` (2 minutes ago).
    """
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    certificates = make_certificates(served)
    for public in (certificates.ca, certificates.certificate):
        public.chmod(0o644)  # xrootd refuses an authority file others may write
    if os.geteuid() == 0:  # xrootd runs as nobody (start_xrootd); the key stays private to it
        nobody = pwd.getpwnam("nobody")
        os.chown(certificates.key, nobody.pw_uid, nobody.pw_gid)
    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    _cache_issuer_key(served / "scitokens-cache", {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": _KEY_ID, "alg": "ES256"}, now)
    (served / "scitokens.cfg").write_text(f"[Global]\naudience = {ANY_AUDIENCE}\n\n[Issuer agcframe-test]\nissuer = {ISSUER}\nbase_path = /\n")

    def token(scope: str, expires_in: int) -> str:
        claims = {
            "wlcg.ver": "1.0", "iss": ISSUER, "sub": "analyst", "aud": ANY_AUDIENCE, "scope": scope,
            "iat": now, "nbf": now - 60, "exp": now + expires_in, "jti": f"{scope}-{expires_in}",
        }  # fmt: skip
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": _KEY_ID})

    tokens: dict[str, Path] = {}
    for name, (scope, expires_in) in {"valid": ("storage.read:/", 3600), "other-path": ("storage.read:/other", 3600), "expired": ("storage.read:/", -120)}.items():
        tokens[name] = served / f"token-{name}"
        tokens[name].write_text(token(scope, expires_in) + "\n")
        tokens[name].chmod(0o600)  # the XRootD client refuses a token file others may read
    http_port = free_port()
    config = (
        f"all.export /\noss.localroot {served / 'data'}\nxrd.protocol XrdHttp:{http_port} libXrdHttp.so\n"
        f"xrd.tls {certificates.certificate} {certificates.key}\nxrd.tlsca certfile {certificates.ca}\nxrootd.tls all\n"
        "xrootd.seclib libXrdSec.so\nsec.protocol ztn\nsec.protbind * only ztn\n"
        f"ofs.authorize 1\nofs.authlib libXrdAccSciTokens.so config={served / 'scitokens.cfg'}\nhttp.header2cgi Authorization authz\n"
    )  # fmt: skip
    with xrootd(served, "agcframe-token-origin", config, environment={"XDG_CACHE_HOME": str(served / "scitokens-cache")}) as server:
        yield TokenOrigin(
            root_url=f"root://127.0.0.1:{server.port}", https_url=f"https://127.0.0.1:{http_port}", tokens=tokens,
            trust={"X509_CERT_FILE": str(certificates.ca), "SSL_CERT_FILE": str(certificates.ca)},
        )  # fmt: skip


def _cache_issuer_key(cache: Path, jwk: dict[str, str], now: int) -> None:
    """The issuer's key in the SciTokens library's key cache (its table, as the library writes it), valid for a day."""
    folder = cache / "scitokens"
    folder.mkdir(parents=True)
    database = sqlite3.connect(folder / "scitokens_cpp.sqllite")
    try:
        database.execute("CREATE TABLE IF NOT EXISTS keycache (issuer text UNIQUE PRIMARY KEY NOT NULL, keys text NOT NULL)")
        entry = {"jwks": {"keys": [jwk]}, "next_update": now + 86400, "expires": now + 2 * 86400}
        database.execute("INSERT INTO keycache VALUES (?, ?)", (ISSUER, json.dumps(entry)))
        database.commit()
    finally:
        database.close()
    for path in (cache, folder, *folder.iterdir()):
        path.chmod(0o777 if path.is_dir() else 0o666)  # the server's user (nobody) reads and updates it
