"""The browser half is served by the server itself, from package data."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from synccli.domain.states import TRANSITIONS, allowed_targets
from synccli.server.http import WEB_FILES, web_file
from tests.conftest import require
from tests.server.helpers import aio, running_server


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


@aio
async def test_client_and_board_are_served_with_a_strict_policy(tmp_path: Path) -> None:
    async with running_server(tmp_path, token="sekret") as server:
        base = server.url.replace("ws://", "http://").removesuffix("/ws")
        for path, (name, content_type) in WEB_FILES.items():
            status, headers, body = await asyncio.to_thread(fetch, base + path)
            assert status == 200, path
            assert headers["Content-Type"] == content_type
            assert "script-src 'self'" in headers["Content-Security-Policy"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert body == web_file(name)
        status, _, body = await asyncio.to_thread(fetch, base + "/client.js")
        assert "export class SyncClient" in body
        status, _, _ = await asyncio.to_thread(fetch, base + "/nothing.js")
        assert status == 404


def test_the_js_state_machine_is_the_domain_one() -> None:
    """synccli-client.js carries its own copy of the transitions: it must not drift."""
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    assert node is not None
    client = Path(__file__).parents[2] / "synccli" / "web" / "synccli-client.js"
    script = (
        f"import({json.dumps(client.as_uri())})"
        ".then((m) => console.log(JSON.stringify(m.TRANSITIONS)))"
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {s: list(allowed_targets(s)) for s in TRANSITIONS}
    assert list(json.loads(done.stdout)) == list(TRANSITIONS)
