"""Pictures in the chat (issue 14): :mod:`~broker.media.images` makes an upload safe (pure),
:mod:`~broker.media.store` holds it in the database, :mod:`~broker.media.service` decides
who may send and see it (docs/protocol.md, "Images")."""

from __future__ import annotations

from broker.media.service import Media, MediaLimits

__all__ = ["Media", "MediaLimits"]
