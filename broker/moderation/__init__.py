"""Chat moderation: the pure per-message decision (deliver, mask or hold) taken before relay.

``load_rules`` reads the rules file (``broker/data/moderation.toml`` or a district's copy),
``Moderator.check`` decides, ``ReloadingModerator`` follows edits to the file. See
``docs/moderation.md``.
"""

from broker.moderation.engine import (
    Action,
    Decision,
    Finding,
    Moderator,
    ReloadingModerator,
    load_rules,
)
from broker.moderation.rules import Rules

__all__ = [
    "Action",
    "Decision",
    "Finding",
    "Moderator",
    "ReloadingModerator",
    "Rules",
    "load_rules",
]
