"""HTTP conventions around ``POST /upscale``: request ids, API keys, ETags.

* ``X-Request-ID``: taken from the request when it is a sane token, else generated; returned on
  every response and written to the access log line (``service/observe.py``).
* API keys (``IMDSR_API_KEYS``, header ``X-API-Key``): off unless keys are configured; health,
  readiness, metrics and the web page stay open (probes and scrapers carry no key).
* A strong ``ETag`` for an upscale: the digest of the input bytes, the options that shape the
  output, and the model's weights, so the same request to the same model gets the same tag and
  ``If-None-Match`` is answered 304 before any work.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import uuid

REQUEST_ID_HEADER = "x-request-id"
_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(given: str | None) -> str:
    """The client's id when it is a short plain token (nothing to inject into logs), else a new one."""
    return given if given and _TOKEN.match(given) else uuid.uuid4().hex


def key_accepted(given: str | None, keys: tuple[str, ...]) -> bool:
    """Whether ``given`` is one of ``keys`` (compared in constant time)."""
    return given is not None and any(hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def etag(body: bytes, options: dict[str, object], weights: str) -> str:
    """Strong ETag of an upscale: input digest + the options that shape the output + the weights."""
    digest = hashlib.sha256(body)
    digest.update(json.dumps(options, sort_keys=True, default=str).encode())
    digest.update(weights.encode())
    return f'"{digest.hexdigest()[:32]}"'


def matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match against a strong tag: ``*`` or any listed tag (weak ones compare weakly)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(t.strip().removeprefix("W/") == tag for t in if_none_match.split(","))
