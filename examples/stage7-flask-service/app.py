"""Stage7 container plugin: a unit converter served over HTTP with Flask.

GET  /health  -> 200 {"status": "healthy"}
POST /execute -> {"inputs": {name: {"value": ...}}, "context": {...}}
                 200 {"success": true, "outputs": {...}}
                 400 {"success": false, "error": "..."} for bad input
"""

import logging
import os
import sys

from flask import Flask, jsonify, request

PORT = 8080  # hard-coded, as in container images; plugd gives each instance its own network

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger("unit-converter")

app = Flask(__name__)

# Factor to the dimension's base unit (metre, kilogram, second, byte).
FACTORS = {
    "length": {
        "mm": 0.001, "cm": 0.01, "m": 1.0, "km": 1000.0,
        "in": 0.0254, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344, "nmi": 1852.0,
    },
    "mass": {
        "mg": 1e-6, "g": 0.001, "kg": 1.0, "t": 1000.0,
        "oz": 0.028349523125, "lb": 0.45359237, "st": 6.35029318,
    },
    "time": {
        "ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "day": 86400.0, "week": 604800.0,
    },
    "data": {
        "B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
        "KiB": 1024.0, "MiB": 1024.0 ** 2, "GiB": 1024.0 ** 3, "TiB": 1024.0 ** 4,
    },
}
TEMPERATURES = {"C", "F", "K"}
ABSOLUTE_ZERO = {"C": -273.15, "F": -459.67, "K": 0.0}


class BadInput(ValueError):
    """The caller's mistake: answered with HTTP 400 and success false."""


def value_of(inputs, name, default=None):
    """Stage7 sends {"value": ...}; a bare value is accepted too."""
    item = inputs.get(name)
    if isinstance(item, dict) and "value" in item:
        return item["value"]
    return default if item is None else item


def dimension_of(unit):
    if unit in TEMPERATURES:
        return "temperature"
    for dimension, units in FACTORS.items():
        if unit in units:
            return dimension
    known = sorted(TEMPERATURES) + sorted(u for units in FACTORS.values() for u in units)
    raise BadInput("unknown unit %r; known units: %s" % (unit, ", ".join(known)))


def to_celsius(value, unit):
    if unit == "C":
        return value
    if unit == "F":
        return (value - 32.0) * 5.0 / 9.0
    return value - 273.15


def from_celsius(value, unit):
    if unit == "C":
        return value
    if unit == "F":
        return value * 9.0 / 5.0 + 32.0
    return value + 273.15


def convert(value, from_unit, to_unit):
    dim_from, dim_to = dimension_of(from_unit), dimension_of(to_unit)
    if dim_from != dim_to:
        raise BadInput("cannot convert %s (%s) to %s (%s)" % (from_unit, dim_from, to_unit, dim_to))
    if dim_from == "temperature":
        if value < ABSOLUTE_ZERO[from_unit]:
            raise BadInput("%s %s is below absolute zero" % (value, from_unit))
        return dim_from, from_celsius(to_celsius(value, from_unit), to_unit)
    units = FACTORS[dim_from]
    return dim_from, value * units[from_unit] / units[to_unit]


def execute_plugin(inputs, context):
    value = value_of(inputs, "value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput("input 'value' must be a number, got %r" % (value,))
    from_unit = str(value_of(inputs, "from_unit", "")).strip()
    to_unit = str(value_of(inputs, "to_unit", "")).strip()
    precision = value_of(inputs, "precision", 4)
    if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0 <= precision <= 12:
        raise BadInput("input 'precision' must be a number from 0 to 12")
    dimension, result = convert(float(value), from_unit, to_unit)
    formatted = "%s %s = %s %s" % (value, from_unit, round(result, int(precision)), to_unit)
    log.info("trace %s: %s", context.get("trace_id"), formatted)
    return {
        "success": True,
        "outputs": {"result": result, "dimension": dimension, "formatted": formatted},
    }


@app.get("/health")
def health():
    return jsonify({"status": "healthy", "plugin": "unit-converter", "environment": os.environ.get("PLUGIN_ENV", "")})


@app.post("/execute")
def execute():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), dict):
        return jsonify({"success": False, "error": "expected a JSON body with an 'inputs' object"}), 400
    try:
        return jsonify(execute_plugin(body["inputs"], body.get("context") or {}))
    except BadInput as e:
        return jsonify({"success": False, "error": str(e)}), 400
    except Exception as e:  # a bug here must still answer in the Stage7 shape
        log.exception("conversion failed")
        return jsonify({"success": False, "error": "internal error: %s" % e}), 500


if __name__ == "__main__":
    log.info("unit-converter listening on port %d (python environment %s)", PORT, sys.prefix)
    app.run(host="0.0.0.0", port=PORT)
