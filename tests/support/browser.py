"""Headless Chromium driven over the DevTools protocol, for tests that use a page as a person
does: type into a field, press Enter, click, wait for what the page shows.

One browser per ``Chromium`` context, one tab, one websocket (aiohttp, already a dependency):
the browser's own endpoint, with the tab attached in "flat" mode so its commands carry a
session id. Everything is awaited, never waited for, because the servers under test run in
the same event loop.

Usage::

    async with Chromium(CHROMIUM, tmp_path) as page:
        await page.goto(f"{url}/")
        await page.type("input[name=q]", "Draining")
        await page.press_enter()
        await page.until("document.querySelectorAll('tr.account').length === 1")
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.waiting import eventually

__all__ = ["Chromium"]

_TIMEOUT = 60.0


class Chromium:
    def __init__(self, executable: str, workdir: Path) -> None:
        self._executable = executable
        self._workdir = workdir
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._session_id = ""

    async def __aenter__(self) -> Chromium:
        self._process = await asyncio.create_subprocess_exec(
            self._executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={self._workdir / 'profile'}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        endpoint = await asyncio.wait_for(self._endpoint(), timeout=_TIMEOUT)
        self._http = aiohttp.ClientSession()
        self._socket = await self._http.ws_connect(endpoint, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        self._session_id = attached["sessionId"]
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self._socket.close()
        await self._http.close()
        if self._process.returncode is None:
            self._process.kill()
        await self._process.wait()

    async def _endpoint(self) -> str:
        assert self._process.stderr is not None
        while line := (await self._process.stderr.readline()).decode():
            if line.startswith("DevTools listening on "):
                return line.split(" on ", 1)[1].strip()
        raise RuntimeError("Chromium exited without a DevTools endpoint")

    async def _read(self) -> None:
        async for message in self._socket:
            data = json.loads(message.data)
            waiting = self._pending.pop(data.get("id", -1), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result, or an error naming the command."""
        message_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = answer
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self._session_id:
            message["sessionId"] = self._session_id
        await self._socket.send_str(json.dumps(message))
        data = await asyncio.wait_for(answer, timeout=_TIMEOUT)
        if "error" in data:
            raise RuntimeError(f"{method}: {data['error']}")
        result: dict[str, Any] = data.get("result", {})
        return result

    async def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, *, within: float = _TIMEOUT) -> None:
        """Wait until the expression is true in the page (a navigation in between is fine)."""

        async def holds() -> bool:
            try:
                return bool(await self.js(expression))
            except RuntimeError:
                return False  # the document was being replaced

        await eventually(holds, within=within, every=0.1)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        await self.until(
            f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        )

    async def type(self, selector: str, text: str) -> None:
        """Focus the field and type into it, as the keyboard would (replacing its value)."""
        await self.js(
            f"(e => {{ e.focus(); e.select(); }})(document.querySelector({json.dumps(selector)}))"
        )
        await self.send("Input.insertText", text=text)

    async def fill(self, selector: str, value: str) -> None:
        """Set a control the keyboard cannot simply type into (a select, a date input)."""
        await self.js(
            f"(e => {{ e.value = {json.dumps(value)}; "
            "e.dispatchEvent(new Event('change', {bubbles: true})); })"
            f"(document.querySelector({json.dumps(selector)}))"
        )

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                text="\r" if kind == "keyDown" else "",
            )

    async def click(self, selector: str) -> None:
        await self.js(f"document.querySelector({json.dumps(selector)}).click()")

    async def text(self, selector: str) -> str:
        value = await self.js(
            f"(e => e ? e.textContent : null)(document.querySelector({json.dumps(selector)}))"
        )
        assert value is not None, f"nothing matches {selector}"
        return str(value)
