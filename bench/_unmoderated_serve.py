"""``python -m bench._unmoderated_serve --port P``: ``homework-help serve`` with every chat
message's moderation decision replaced by a plain "deliver", without looking at the text.

Used only by ``bench.moderation_relay`` as the "moderation off" side of its comparison: the
application has no switch to turn moderation off (a district must not be able to), so the
baseline patches the one call, in this process only.
"""

from __future__ import annotations

import sys

from broker.moderation.engine import Decision
from broker.safety import Safety
from web.cli import main as cli_main


def _deliver(self: Safety, text: str, sender: str) -> Decision:
    return Decision("deliver", text, (), False)


def main(argv: list[str] | None = None) -> int:
    Safety.decide = _deliver  # type: ignore[method-assign]
    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
