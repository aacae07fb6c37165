"""``python -m bench._profile_serve OUT.prof --port P``: ``homework-help serve`` under cProfile.

Used only by ``bench.broker --profile``: the server's own code is unchanged; the profile is
written when the server stops (SIGTERM / SIGINT end aiohttp's ``run_app`` normally).
"""

from __future__ import annotations

import cProfile
import sys

from web.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out, rest = argv[0], argv[1:]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        code = cli_main(["serve", *rest])
    finally:
        profiler.disable()
        profiler.dump_stats(out)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
