"""Chat pictures over HTTP (the policy is :mod:`broker.media`'s; docs/protocol.md, "Images").

=======  ============================================  ========================================
POST     ``/api/sessions/{session_id}/images``          the picture as the raw body (any
                                                         content type: the bytes are sniffed)
                                                         -> 201 ``{"image": {id, type, width,
                                                         height, bytes}}``
GET      ``/api/sessions/{session_id}/images/{id}``     the re-encoded picture
=======  ============================================  ========================================

Guarantees:

* The caller is the chat's own identity: ``Authorization: Bearer <the socket.io token>``
  of a student or tutor (a tutor's account must still be enabled). No cookie is read, so a
  cross-site form cannot post a picture into someone's chat.
* Who may upload is checked **before the body is read**; the body is then read in chunks
  and refused as soon as it passes the byte limit (a declared ``Content-Length`` over it is
  refused unread), so an oversized upload never sits whole in memory.
* Every refusal is a problem body with a typed code (``image_too_large``,
  ``unsupported_image``, ``bad_image``, ``image_limit``, ``rate_limited``, ``not_found``,
  ``not_allowed``, ``unauthenticated``) and nothing stored.
* A picture is sent ``Cache-Control: no-store, private`` (no shared or disk cache keeps a
  child's homework photo), ``X-Content-Type-Options: nosniff`` and a sandboxing
  ``Content-Security-Policy``, so even a picture opened on its own runs nothing.
"""

from __future__ import annotations

from aiohttp import web

from broker.errors import InvalidPayload, NotAllowed, Unauthenticated
from broker.identity import Identity
from broker.media.errors import ImageTooLarge
from web.auth import bearer_identity
from web.keys import BROKER, SIGN_IN

CHUNK = 64 * 1024
IMAGE_HEADERS = {
    "Cache-Control": "no-store, private",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
    "Content-Disposition": "inline",
}


async def _caller(request: web.Request) -> Identity:
    identity = bearer_identity(request)
    if identity is None:
        raise Unauthenticated("send the chat's token: Authorization: Bearer <token>")
    if identity.role not in ("student", "tutor"):
        raise NotAllowed("only a chat's student and tutor send and see its pictures")
    await request.app[SIGN_IN].still_active(identity)
    return identity


def _ident(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if len(value) > 64 or not value.replace("-", "").replace("_", "").isalnum():
        raise InvalidPayload(f"'{key}' is not a valid id", field=key)
    return value


async def read_capped(request: web.Request, max_bytes: int) -> bytes:
    """The request body, refused (:class:`ImageTooLarge`) once past ``max_bytes``."""
    too_large = ImageTooLarge(
        f"the picture is larger than {max_bytes // (1024 * 1024)} MB", max_bytes=max_bytes
    )
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise too_large
    body = bytearray()
    while chunk := await request.content.read(CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


async def upload(request: web.Request) -> web.Response:
    identity = await _caller(request)
    session_id = _ident(request, "session_id")
    media = request.app[BROKER].media
    await media.may_upload(identity, session_id)  # before reading a byte of the body
    data = await read_capped(request, media.limits.rules.max_bytes)
    image = await media.upload(identity, session_id, data)
    return web.json_response({"image": image}, status=201)


async def fetch(request: web.Request) -> web.Response:
    identity = await _caller(request)
    media = request.app[BROKER].media
    data, media_type = await media.fetch(
        identity, _ident(request, "session_id"), _ident(request, "image_id")
    )
    return web.Response(body=data, content_type=media_type, headers=IMAGE_HEADERS)


def setup_media_api(app: web.Application) -> None:
    app.router.add_post("/api/sessions/{session_id}/images", upload)
    app.router.add_get("/api/sessions/{session_id}/images/{image_id}", fetch)
