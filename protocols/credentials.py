"""Remove credentials from source URLs before they reach a log, an event or an error message.

Cameras put credentials in two places: the user-info part (`rtsp://admin:secret@host/...`) and the
query string (`...?user=admin&password=secret`, signed URLs with `token=` or `signature=`). Both
go: the user-info is dropped, and the values of credential-like query parameters are replaced by
`REDACTED` (the names stay, so a reader can still tell which parameter was set).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"

# Query parameter names (lower case) whose values are secrets or identify an account.
SECRET_PARAMS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "user", "username", "login",
        "token", "access_token", "auth", "authorization", "key", "apikey", "api_key",
        "secret", "signature", "sig", "credential", "credentials", "passphrase",
        "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    }
)  # fmt: skip

# Schemes whose "@" is not a user-info separator (`synthetic://WxH@FPS`, `world://SIDE@FPS`) and
# that carry no secrets.
NO_CREDENTIAL_SCHEMES = frozenset({"synthetic", "world"})

_AUTHORITY = re.compile(r"(?<=//)[^/?#]*")  # fallback for strings urlsplit refuses


def redact_url(url: str) -> str:
    """`url` without credentials; strings without any (file paths, too) come back unchanged.

    Pure and total: it never raises, whatever the input string.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced '[' in the host: still strip anything before '@'
        return _AUTHORITY.sub(lambda m: _without_userinfo(m.group()), url, count=1)
    if parts.scheme.lower() in NO_CREDENTIAL_SCHEMES:
        return url
    netloc, query = parts.netloc, parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    secret_query = any(name.lower() in SECRET_PARAMS for name, _ in pairs)
    if "@" not in netloc and not secret_query:
        return url  # nothing to remove: leave the string exactly as it was
    netloc = _without_userinfo(netloc)
    if secret_query:
        query = urlencode(
            [(n, REDACTED if n.lower() in SECRET_PARAMS else v) for n, v in pairs], safe="/:"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _without_userinfo(netloc: str) -> str:
    """`user:pass@host:port` -> `host:port`. An empty user-info stays: `udp://@:5000` is FFmpeg's
    spelling for "receive on local port 5000" and carries no secret."""
    userinfo, at, host = netloc.rpartition("@")
    return host if userinfo else netloc
