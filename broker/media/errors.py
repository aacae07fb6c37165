"""The typed refusals of the image path (codes sent unchanged in an ack or a problem body).

Every refusal means nothing was stored: an upload is checked whole (size, type by its
bytes, dimensions, decoding) before its one insert.
"""

from __future__ import annotations

from broker.errors import BrokerError


class ImageTooLarge(BrokerError):
    """The upload is over the byte limit (``detail.max_bytes``)."""

    code = "image_too_large"
    http_status = 413


class UnsupportedImage(BrokerError):
    """Not a JPEG, PNG or WebP by its bytes (``detail.format``: what it looked like:
    ``svg``, ``heic``, ``avif``, ``gif``, ``pdf``, ``unknown``...). The name and the
    declared content type are never trusted."""

    code = "unsupported_image"
    http_status = 415


class BadImage(BrokerError):
    """A JPEG, PNG or WebP that cannot be taken: ``detail.reason`` is ``dimensions`` (more
    pixels or a longer edge than allowed, checked from the header before decoding),
    ``decompression_bomb`` (Pillow's own guard) or ``unreadable`` (corrupt, truncated)."""

    code = "bad_image"
    http_status = 422


class ImageLimit(BrokerError):
    """The session already holds as many pictures (``detail.limit: "count"``) or bytes of
    pictures (``"bytes"``) as it may (``detail.max``)."""

    code = "image_limit"
    http_status = 409
