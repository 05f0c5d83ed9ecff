"""crypt(3) SHA-256 and SHA-512 (``$5$`` / ``$6$``), written from the published algorithm.

Theory of operation
-------------------
Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512" (2007, the text glibc
implements) builds a digest from the password P and salt S in steps:

1. B = H(P S P); A = H(P S, then B repeated over len(P) bytes, then for each
   bit of len(P) from the lowest: B if set else P).
2. DP = H(P repeated len(P) times); the P-sequence is DP repeated to len(P).
   DS = H(S repeated 16 + A[0] times); the S-sequence is DS cut to len(S).
3. ``rounds`` times (default 5000): C = H(C or P-seq, S-seq unless i % 3 == 0,
   P-seq unless i % 7 == 0, P-seq or C), alternating on the parity of i.
4. The final digest's bytes are written in a fixed permuted order, three at a
   time, in crypt's own base64 alphabet (``./0-9A-Za-z``, low bits first).

The stdlib ``crypt`` module is deprecated (PEP 594) and gone in 3.13, so the
passwd-file check uses this. :func:`verify` compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["ShaCryptError", "sha_crypt", "verify"]

_ALPHABET: Final = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ROUNDS_DEFAULT: Final = 5000
ROUNDS_MIN: Final = 1000
ROUNDS_MAX: Final = 999_999_999
SALT_MAX: Final = 16


class ShaCryptError(ValueError):
    """A hash string that is not ``$5$``/``$6$`` crypt syntax."""


def _order(digest_size: int) -> list[tuple[int, ...]]:
    """The byte triples of the output encoding (the spec's b64_from_24bit calls)."""
    if digest_size == 64:
        out = []
        for k in range(21):
            base = (k, k + 21, k + 42)
            r = k % 3
            out.append(base[r:] + base[:r])
        out.append((63,))
        return out
    # SHA-256: (k, k+10, k+20) rotated right by k % 3, then the last two bytes.
    out = []
    for k in range(10):
        base = (k, k + 10, k + 20)
        r = (3 - k % 3) % 3
        out.append(base[r:] + base[:r])
    out.append((31, 30))
    return out


_ORDERS: Final = {64: _order(64), 32: _order(32)}


def _encode(digest: bytes) -> str:
    chars: list[str] = []
    for group in _ORDERS[len(digest)]:
        if len(group) == 3:
            w, n = (digest[group[0]] << 16) | (digest[group[1]] << 8) | digest[group[2]], 4
        elif len(group) == 2:
            w, n = (digest[group[0]] << 8) | digest[group[1]], 3
        else:
            w, n = digest[group[0]], 2
        for _ in range(n):
            chars.append(_ALPHABET[w & 0x3F])
            w >>= 6
    return "".join(chars)


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def sha_crypt(password: bytes, salt: str, *, algorithm: str = "sha512",
              rounds: int | None = None) -> str:
    """The full ``$6$[rounds=N$]salt$hash`` (or ``$5$``) string for ``password``."""
    if algorithm not in ("sha256", "sha512"):
        raise ShaCryptError(f"unknown algorithm {algorithm!r}")
    prefix = "$5$" if algorithm == "sha256" else "$6$"

    def new(data: bytes = b"") -> hashlib._Hash:
        return hashlib.new(algorithm, data)

    salt_b = salt.encode("utf-8")[:SALT_MAX]
    n_rounds = ROUNDS_DEFAULT if rounds is None else min(max(rounds, ROUNDS_MIN), ROUNDS_MAX)
    plen = len(password)
    b = new(password + salt_b + password).digest()
    size = len(b)
    a = new(password + salt_b)
    a.update(_repeat(b, plen))
    n = plen
    while n:
        a.update(b if n & 1 else password)
        n >>= 1
    a_digest = a.digest()
    p_seq = _repeat(new(password * plen).digest(), plen) if plen else b""
    s_seq = _repeat(new(salt_b * (16 + a_digest[0])).digest(), len(salt_b)) if salt_b else b""
    c = a_digest
    for i in range(n_rounds):
        ctx = new(p_seq if i & 1 else c)
        if i % 3:
            ctx.update(s_seq)
        if i % 7:
            ctx.update(p_seq)
        ctx.update(c if i & 1 else p_seq)
        c = ctx.digest()
    assert len(c) == size
    rounds_part = "" if rounds is None else f"rounds={n_rounds}$"
    return f"{prefix}{rounds_part}{salt_b.decode('utf-8', 'replace')}${_encode(c)}"


def verify(password: bytes, hashed: str) -> bool:
    """Whether ``password`` matches a ``$5$``/``$6$`` crypt string."""
    if hashed.startswith("$6$"):
        algorithm = "sha512"
    elif hashed.startswith("$5$"):
        algorithm = "sha256"
    else:
        raise ShaCryptError("not a SHA-crypt string")
    rest = hashed[3:]
    rounds: int | None = None
    if rest.startswith("rounds="):
        spec, sep, rest = rest.partition("$")
        if not sep or not spec[7:].isdigit():
            raise ShaCryptError("bad rounds= field")
        rounds = int(spec[7:])
    salt, sep, _ = rest.rpartition("$")
    if not sep:
        raise ShaCryptError("no salt separator")
    computed = sha_crypt(password, salt, algorithm=algorithm, rounds=rounds)
    return hmac.compare_digest(computed.encode(), hashed.encode())
