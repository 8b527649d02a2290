"""The MCP server's stdio transport, guarded: every line a client sends gets an answer.

The SDK's own transport drops a line it cannot read (not JSON, not a JSON-RPC message) without
a word, and a message nested a few hundred levels deep never gets an answer: the agent on the
other end waits forever. Here each line is judged before the SDK sees it; one it would drop is
answered with a JSON-RPC error (``-32700`` parse error, ``-32600`` invalid request) carrying
the request's id when it has one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from io import TextIOWrapper
from typing import Any

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server

# Deeper than any real request; JSON parsers (and the SDK's validation) recurse per level.
MAX_NESTING = 64
PARSE_ERROR, INVALID_REQUEST = -32700, -32600
NOT_JSON = "Parse error: the line is not JSON"
TOO_DEEP = f"Invalid Request: nested more than {MAX_NESTING} levels"
NOT_A_MESSAGE = "Invalid Request: not a JSON-RPC 2.0 message"


def nesting(line: str) -> int:
    """How deeply ``line``'s arrays and objects nest, counted without parsing it (strings and
    their escapes skipped), so that a hostile depth costs one pass over the line."""
    depth = deepest = 0
    in_string = escaped = False
    for char in line:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def refusal(line: str) -> dict[str, Any] | None:
    """The JSON-RPC error that answers ``line``, or None when the SDK can take it."""
    if nesting(line) > MAX_NESTING:
        return _error(None, INVALID_REQUEST, TOO_DEEP)
    try:
        document = json.loads(line)
    except ValueError:
        return _error(None, PARSE_ERROR, NOT_JSON)
    try:
        types.jsonrpc_message_adapter.validate_python(document, by_name=False)
    except Exception:
        request_id = document.get("id") if isinstance(document, dict) else None
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            request_id = None
        return _error(request_id, INVALID_REQUEST, NOT_A_MESSAGE)
    return None


def _error(request_id: str | int | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


class _Output:
    """stdout shared by the SDK's writer and the refusals: one line at a time."""

    def __init__(self, file: anyio.AsyncFile[str]) -> None:
        self.file = file
        self.lock = anyio.Lock()

    async def write(self, text: str) -> None:
        async with self.lock:
            await self.file.write(text)

    async def flush(self) -> None:
        async with self.lock:
            await self.file.flush()

    async def answer(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.file.write(json.dumps(message) + "\n")
            await self.file.flush()


class _CheckedInput:
    """The client's lines the SDK can take; the others are answered here."""

    def __init__(self, source: anyio.AsyncFile[str], output: _Output) -> None:
        self.source = source
        self.output = output

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        async for line in self.source:
            if not line.strip():
                continue
            answer = refusal(line)
            if answer is None:
                yield line
            else:
                await self.output.answer(answer)


async def serve_stdio(server: MCPServer, stdin: Any = None, stdout: Any = None) -> None:
    """``server`` over stdin and stdout (or the text streams given), every line answered."""
    source = anyio.wrap_file(
        stdin or TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")
    )
    output = _Output(anyio.wrap_file(stdout or TextIOWrapper(sys.stdout.buffer, encoding="utf-8")))
    lowlevel = server._lowlevel_server
    async with stdio_server(stdin=_CheckedInput(source, output), stdout=output) as (read, write):
        await lowlevel.run(read, write, lowlevel.create_initialization_options())
