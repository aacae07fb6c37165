"""docs/protocol.md stays true to the code: every socket.io event a namespace handles, every
error code, and every HTTP route the app mounts is documented."""

from __future__ import annotations

import re
from pathlib import Path

from broker import errors
from broker.settings import Settings
from web.app import init_app
from web.sio import NAMESPACE_ROLES

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def _section(namespace: str) -> str:
    """The text of the ``## /student`` (etc.) section of the protocol."""
    start = DOC.index(f"## `{namespace}`")
    following = DOC.find("\n## ", start + 1)
    return DOC[start : following if following != -1 else len(DOC)]


def test_every_handled_event_is_documented_in_its_namespace() -> None:
    app = init_app(Settings(secret_key="k" * 32, demo=True))
    from web.keys import GATEWAY

    handlers = app[GATEWAY].sio.handlers
    missing = []
    for namespace in NAMESPACE_ROLES:
        events = set(handlers.get(namespace, {})) - {"connect", "disconnect", "*"}
        assert events, f"no events registered on {namespace}"
        section = _section(namespace)
        missing += [f"{namespace} {e}" for e in sorted(events) if f"`{e}`" not in section]
    assert not missing, f"events missing from docs/protocol.md: {missing}"


CLI_ONLY = {"config_error", "import_failed"}  # raised by commands, never by an event or route


def test_every_error_code_is_documented() -> None:
    codes = {
        cls.code for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.BrokerError)
    } - CLI_ONLY
    missing = sorted(code for code in codes if f"`{code}`" not in DOC)
    assert not missing, f"error codes missing from docs/protocol.md: {missing}"


def test_every_http_route_is_documented() -> None:
    app = init_app(Settings(secret_key="k" * 32, demo=True))
    paths = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        if path and not path.startswith("/socket.io"):
            paths.add(str(path))
    documented = set()
    for path in re.findall(r"`(/[^`\s]*)`", DOC):
        brace = re.search(r"\{([^}]*,[^}]*)\}", path)  # /api/stats/{summary,waits}
        if brace:
            documented |= {path.replace(brace.group(0), part) for part in brace.group(1).split(",")}
        documented.add(path)
    missing = sorted(p for p in paths if p not in documented and p + "/…" not in documented
                     and not any(d.startswith(p) for d in documented))
    assert not missing, f"routes missing from docs/protocol.md: {missing}"
