"""Data Normalizer: an OmniScope file-runtime plugin (seed 001, "Example Plugins" 1).

The host writes /plugin/input.json:
    {"context": {"plugin_id", "plugin_name", "config", "permissions"},
     "data": <input_data>, "parameters": {...}}
and this script writes /plugin/output.json:
    {"data", "metadata", "logs", "warnings", "errors"}
exiting 0 on success. For local runs the two paths may be given as arguments.

Accepted data: a list of numbers, a matrix (list of equal-length lists), a mapping of
name -> list of numbers (each normalized on its own), or {"values": [...]}.
"""

import json
import sys

import numpy as np

METHODS = ("zscore", "minmax", "robust")


def scale(x: np.ndarray, method: str, axis: int, warnings: list) -> np.ndarray:
    """Normalizes x along axis; constant slices become 0 instead of dividing by zero."""
    if method == "zscore":
        center = x.mean(axis=axis, keepdims=True)
        spread = x.std(axis=axis, keepdims=True)
    elif method == "minmax":
        center = x.min(axis=axis, keepdims=True)
        spread = x.max(axis=axis, keepdims=True) - center
    else:  # robust: median and interquartile range resist outliers
        center = np.median(x, axis=axis, keepdims=True)
        q75, q25 = np.percentile(x, [75, 25], axis=axis, keepdims=True)
        spread = q75 - q25
    flat = spread == 0
    if np.any(flat):
        warnings.append(f"{int(np.count_nonzero(flat))} constant slice(s) normalized to 0")
    return np.where(flat, 0.0, (x - center) / np.where(flat, 1.0, spread))


def as_array(values, what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must hold only numbers: {exc}") from None
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if arr.ndim > 2:
        raise ValueError(f"{what} must be a list or a matrix, not {arr.ndim}-dimensional")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def normalize(data, method: str, axis: int, decimals: int, warnings: list):
    if isinstance(data, dict) and set(data) == {"values"}:
        data = data["values"]
    if isinstance(data, dict):
        return {
            name: normalize(values, method, 0, decimals, warnings) for name, values in data.items()
        }
    arr = as_array(data, "data")
    axis = 0 if arr.ndim == 1 else axis
    return np.round(scale(arr, method, axis, warnings), decimals).tolist()


def run(request: dict) -> dict:
    context = request.get("context") or {}
    config = context.get("config") or {}
    parameters = request.get("parameters") or {}
    method = parameters.get("method", config.get("method", "zscore"))
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    axis = int(parameters.get("axis", config.get("axis", 0)))
    if axis not in (0, 1):
        raise ValueError("axis must be 0 (columns) or 1 (rows)")
    decimals = int(parameters.get("decimals", config.get("decimals", 6)))
    if "data" not in request or request["data"] is None:
        raise ValueError("missing input data")
    warnings: list = []
    result = normalize(request["data"], method, axis, decimals, warnings)
    return {
        "data": result,
        "metadata": {
            "plugin_id": context.get("plugin_id"),
            "method": method,
            "axis": axis,
        },
        "logs": [f"normalized with {method}"],
        "warnings": warnings,
        "errors": [],
    }


def main() -> int:
    input_path = sys.argv[1] if len(sys.argv) > 1 else "/plugin/input.json"
    output_path = sys.argv[2] if len(sys.argv) > 2 else "/plugin/output.json"
    try:
        with open(input_path, encoding="utf-8") as f:
            output, status = run(json.load(f)), 0
    except (OSError, ValueError, TypeError) as exc:
        output = {"data": None, "metadata": {}, "logs": [], "warnings": [], "errors": [str(exc)]}
        status = 1
    with open(output_path, "w", encoding="utf-8") as f:
        json.dump(output, f)
    return status


if __name__ == "__main__":
    sys.exit(main())
