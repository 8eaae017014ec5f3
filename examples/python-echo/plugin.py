#!/usr/bin/env python3
"""python-echo: an OmniFlow-style NDJSON plugin (seed 000's sample_plugin), standard library only.

Protocol: one JSON request per line on stdin, one JSON response per line on stdout,
logs on stderr. Requests: health, exec (actions echo, reverse, compute), meta, shutdown.
Arguments are read from payload.args and, OmniFlow style, flat from payload.
"""

import json
import os
import re
import sys
import time

PLUGIN = "python-echo"
VERSION = "1.0.0"
DEFAULT_MAX_LINE = 131072

# Error codes of the OmniFlow taxonomy.
MALFORMED_JSON = 100
LINE_TOO_LONG = 101
MISSING_FIELD = 102
UNSUPPORTED_ACTION = 200
INVALID_ARGS = 201
INTERNAL = 400

LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


def env_int(name, default):
    try:
        value = int(os.environ.get(name, ""))
        return value if value > 0 else default
    except ValueError:
        return default


MAX_LINE = env_int("OMNIFLOW_PLUGIN_MAX_LINE", DEFAULT_MAX_LINE)
LOG_JSON = os.environ.get("OMNIFLOW_LOG_JSON", "false").lower() == "true"
LOG_LEVEL = LEVELS.get(os.environ.get("PLUGIN_LOG_LEVEL", "info").lower(), 20)


def log(level, message, **fields):
    """Logs go to stderr: stdout carries responses only."""
    if LEVELS[level] < LOG_LEVEL:
        return
    if LOG_JSON:
        record = {"ts": time.time(), "level": level, "plugin": PLUGIN, "msg": message}
        record.update(fields)
        line = json.dumps(record)
    else:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{level.upper()} {PLUGIN}: {message}" + (f" {extra}" if extra else "")
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def respond(out, response):
    out.write(json.dumps(response, separators=(",", ":")).encode("utf-8") + b"\n")
    out.flush()


def ok(rid, body):
    return {"id": rid, "status": "ok", "code": 0, "body": body}


def error(rid, code, message):
    return {"id": rid, "status": "error", "code": code, "message": message}


class BadArgs(Exception):
    """The caller's arguments are wrong: answered with code 201."""


def argument(payload, name):
    """An argument from payload.args, else flat from payload (seed style)."""
    args = payload.get("args")
    if isinstance(args, dict) and name in args:
        return args[name]
    return payload.get(name)


def string_argument(payload, name):
    value = argument(payload, name)
    if not isinstance(value, str):
        raise BadArgs(f"`{name}` must be a string, got {type(value).__name__}")
    return value


def number_argument(payload, name):
    value = argument(payload, name)
    # bool is an int in Python; true + 1 is not arithmetic anyone asked for.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadArgs(f"`{name}` must be a number, got {json.dumps(value)}")
    return value


def do_echo(payload):
    return {"action": "echo", "message": string_argument(payload, "message")}


def do_reverse(payload):
    return {"action": "reverse", "message": string_argument(payload, "message")[::-1]}


def do_compute(payload):
    op = argument(payload, "op")
    a = number_argument(payload, "a")
    b = number_argument(payload, "b")
    if op == "add":
        result = a + b
    elif op == "sub":
        result = a - b
    elif op == "mul":
        result = a * b
    elif op == "div":
        if b == 0:
            raise BadArgs("division by zero: `b` must not be 0 for op `div`")
        result = a / b
    else:
        raise BadArgs(f"`op` must be one of add, sub, mul, div, got {json.dumps(op)}")
    return {"action": "compute", "op": op, "a": a, "b": b, "result": result}


ACTIONS = {
    "echo": (do_echo, "Returns the message it was given."),
    "reverse": (do_reverse, "Returns the message reversed."),
    "compute": (do_compute, "Adds, subtracts, multiplies or divides a and b."),
}


def handle(request):
    """One request → (response, keep_running)."""
    rid = request.get("id")
    kind = request.get("type")
    if not isinstance(rid, str) or not rid:
        return error(None, MISSING_FIELD, "request has no string `id`"), True
    if not isinstance(kind, str):
        return error(rid, MISSING_FIELD, "request has no string `type`"), True
    payload = request.get("payload") or {}
    if not isinstance(payload, dict):
        return error(rid, INVALID_ARGS, "`payload` must be an object or null"), True

    if kind == "health":
        return ok(rid, {"status": "healthy", "plugin": PLUGIN, "version": VERSION}), True
    if kind == "shutdown":
        log("info", "shutting down")
        return ok(rid, {"status": "bye"}), False
    if kind == "meta":
        actions = [{"name": n, "description": d} for n, (_, d) in ACTIONS.items()]
        return ok(rid, {"plugin": PLUGIN, "version": VERSION, "actions": actions}), True
    if kind != "exec":
        return error(rid, UNSUPPORTED_ACTION, f"unsupported request type {kind!r}"), True

    action = payload.get("action")
    if action not in ACTIONS:
        known = ", ".join(ACTIONS)
        return error(rid, UNSUPPORTED_ACTION, f"unknown action {action!r}; known: {known}"), True
    try:
        return ok(rid, ACTIONS[action][0](payload)), True
    except BadArgs as exc:
        return error(rid, INVALID_ARGS, f"{action}: {exc}"), True


LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*"([^"\\]{1,200})"')


def sniff_id(head):
    """The id of a request that cannot be parsed, when it comes first, so the host
    can still match the error to its request; None otherwise."""
    match = LEADING_ID.match(head)
    return match.group(1).decode("utf-8", "replace") if match else None


def read_line(stream):
    """The next line, None at EOF, or (length, first bytes) of a line over MAX_LINE.

    The limit is checked before anything is parsed, and an over-long line is
    consumed in bounded chunks instead of being held whole.
    """
    line = stream.readline(MAX_LINE + 2)
    if not line:
        return None
    content = line.rstrip(b"\r\n") if line.endswith(b"\n") else line
    if len(content) <= MAX_LINE and (line.endswith(b"\n") or len(line) <= MAX_LINE):
        return content
    head, total = line[:512], len(line)
    while not line.endswith(b"\n"):
        line = stream.readline(65536)
        if not line:
            break
        total += len(line)
    return total, head


def main():
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    log("info", "ready", max_line=MAX_LINE)
    while True:
        line = read_line(stdin)
        if line is None:
            log("info", "stdin closed, exiting")
            return 0
        if isinstance(line, tuple):
            size, head = line
            log("warn", "request line over the limit", bytes=size, limit=MAX_LINE)
            message = f"request line of {size} bytes is over the {MAX_LINE}-byte limit"
            respond(stdout, error(sniff_id(head), LINE_TOO_LONG, message))
            continue
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            respond(stdout, error(sniff_id(line[:512]), MALFORMED_JSON, f"malformed JSON: {exc}"))
            continue
        if not isinstance(request, dict):
            respond(stdout, error(None, MALFORMED_JSON, "a request must be a JSON object"))
            continue
        try:
            response, keep_running = handle(request)
        except Exception as exc:  # a bug in a handler must not kill the plugin
            log("error", "handler failed", error=repr(exc))
            response, keep_running = error(request.get("id"), INTERNAL, f"internal error: {exc}"), True
        respond(stdout, response)
        if not keep_running:
            return 0


if __name__ == "__main__":
    sys.exit(main())
