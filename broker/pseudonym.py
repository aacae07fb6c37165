"""Student pseudonyms: a keyed HMAC of the LTI issuer and subject with the district secret.

Stable for one student across launches and processes, unlinkable to the LMS id without the
secret, and short enough to show to tutors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def pseudonym(secret: str, issuer: str, subject: str) -> str:
    mac = hmac.new(secret.encode(), f"{issuer}\x1f{subject}".encode(), hashlib.sha256).digest()
    return "s-" + base64.b32encode(mac[:10]).decode().lower()
