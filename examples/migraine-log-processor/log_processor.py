"""log-processor: a Migraine hook handler (seed 003, sections 1.1 to 1.3).

plugd calls process_log(plugin_config, context) on every `command-output` event and returns
its dict. Standard library only. The log file is resolved against the current directory (the
plugin's private work directory under plugd) and may not leave it.
"""

import os
from datetime import datetime

SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}
DEFAULT_MAX_SIZE = 10 * 1024**2


def process_log(plugin_config: dict, context: dict) -> dict:
    """Appends one line describing the command output to the log file, rotating it when full.

    Args:
        plugin_config: the plugin's config (`log_file`, `max_file_size`).
        context: the Migraine context: `output`, `command` (text or {original, resolved,
            exit_code}), `workflow` ({name, ...}), `step`, `timestamp`, `variables`.

    Returns:
        {"status": "success", "output": ..., "processed_lines": 1} or
        {"status": "error", "output": <reason>, "processed_lines": 0}.
    """
    plugin_config = plugin_config or {}
    context = context or {}
    try:
        log_file = contained_path(plugin_config.get("log_file", "./workflow.log"))
        max_bytes = parse_size(plugin_config.get("max_file_size", "10MB"))
    except ValueError as exc:
        return {"status": "error", "output": str(exc), "processed_lines": 0}

    command = context.get("command", "")
    if isinstance(command, dict):
        command = command.get("resolved") or command.get("original") or ""
    workflow = context.get("workflow") or {}
    workflow_name = workflow.get("name", "unknown") if isinstance(workflow, dict) else str(workflow)
    output = str(context.get("output", "")).replace("\n", "\\n")
    timestamp = context.get("timestamp") or datetime.now().isoformat()
    entry = f"[{timestamp}] [{workflow_name}] [{command}]: {output}\n"

    if should_rotate(log_file, max_bytes):
        rotate_log(log_file)
    with open(log_file, "a", encoding="utf-8") as f:
        f.write(entry)
    return {
        "status": "success",
        "output": f"Logged to {os.path.relpath(log_file)}",
        "processed_lines": 1,
    }


def contained_path(path: str) -> str:
    """Resolves `path` against the working directory; refuses anything outside it."""
    base = os.path.realpath(os.getcwd())
    full = os.path.realpath(os.path.join(base, str(path)))
    if os.path.commonpath([base, full]) != base or full == base:
        raise ValueError(f"log_file {path!r} must be a file inside the work directory")
    return full


def parse_size(size) -> int:
    """'10MB' -> 10485760; a bare number is bytes."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    text = str(size).strip().upper()
    for unit in sorted(SIZE_UNITS, key=len, reverse=True):
        number = text[: -len(unit)].strip()
        if text.endswith(unit) and number.isdigit() and int(number) > 0:
            return int(number) * SIZE_UNITS[unit]
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"max_file_size {size!r} is not a size such as '10MB'")


def should_rotate(log_file: str, max_bytes: int) -> bool:
    """Whether the log file has grown past max_bytes."""
    return os.path.exists(log_file) and os.path.getsize(log_file) > max_bytes


def rotate_log(log_file: str) -> None:
    """Keeps one previous generation as `<log_file>.old`."""
    os.replace(log_file, f"{log_file}.old")
