"""API keys for the Serve app: `Authorization: Bearer <key>` on every model route (`/healthz` and the static
page at `/` excepted: they expose no model).

Keys come from a file (`serve.api_keys_file`, one key per line, `#` comments), read by each replica at
start. Not from the config itself: the config travels as the Serve app's arguments, which Ray's dashboard
shows, and is saved beside runs; a file path carries no secret, and a shared file reaches every node the
way the model dir does. Comparison is constant-time per key and every key is compared, so the time taken
does not say how much of a key was right; a presented key is never echoed or logged.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from cluster.config import ConfigError, QThinkConfig
from cluster.serve_requests import ApiError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def load_api_keys(path: str) -> tuple[bytes, ...]:
    if not path:
        return ()
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    keys = tuple(line.encode() for line in lines if line and not line.startswith("#"))
    if not keys:
        raise ConfigError(f"serve.api_keys_file {path!r} holds no key (one per line)")
    return keys


def check_exposure(cfg: QThinkConfig) -> None:
    """Refuse to serve an open endpoint beyond this machine unless told to."""
    s = cfg.serve
    if s.host not in LOOPBACK_HOSTS and not s.api_keys_file and not s.allow_unauthenticated:
        raise ConfigError(f"serve.host={s.host} accepts other machines, but no serve.api_keys_file is set: set one, "
                          "or serve.allow_unauthenticated=true to serve without keys")


def authorize(authorization: str | None, keys: tuple[bytes, ...]) -> None:
    """Raises a 401 ApiError unless `authorization` is `Bearer <one of keys>`; no keys: open."""
    if not keys:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(401, "missing API key: send Authorization: Bearer <key>", "authentication_error")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.strip().encode(), key)
    if not matched:
        raise ApiError(401, "invalid API key", "authentication_error")
