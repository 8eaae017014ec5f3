"""Outlier detector: an OmniScope SDK-style class plugin (seed 001), standard library only.

The host creates `OutlierDetector(context)` with context = {plugin_id, plugin_name, config,
permissions} and calls `execute(input_data)` with input_data = {"data": ..., "parameters":
{...}}. `data` is a list of numbers, or an object with a `values` list. Parameters (each
defaulting to the plugin config): `method` ("iqr" or "zscore"), `k` (IQR fence factor),
`threshold` (z-score limit).
"""

import math
import statistics
from typing import Any, Dict, List

METHODS = ("iqr", "zscore")


class OutlierDetector:
    """Flags values far from the bulk of a sample."""

    def __init__(self, context: Dict[str, Any]):
        self.plugin_id = context.get("plugin_id", "outlier_detector")
        self.config = context.get("config", {})
        self.method = self.config.get("method", "iqr")
        self.iqr_k = float(self.config.get("iqr_k", 1.5))
        self.z_threshold = float(self.config.get("z_threshold", 3.0))

    def validate_input(self, input_data: Dict[str, Any]) -> List[float]:
        data = input_data.get("data")
        if isinstance(data, dict):
            data = data.get("values")
        if not isinstance(data, list):
            raise ValueError("data must be a list of numbers or an object with a `values` list")
        values = []
        for i, v in enumerate(data):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"data[{i}] = {v!r} is not a finite number")
            values.append(float(v))
        if len(values) < 4:
            raise ValueError(f"need at least 4 values to find outliers, got {len(values)}")
        return values

    def execute(self, input_data: Dict[str, Any]) -> Dict[str, Any]:
        """Execute plugin logic"""
        parameters = input_data.get("parameters") or {}
        method = parameters.get("method", self.method)
        try:
            values = self.validate_input(input_data)
            if method not in METHODS:
                raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
            if method == "iqr":
                result, logs = self.iqr(values, float(parameters.get("k", self.iqr_k)))
            else:
                result, logs = self.zscore(values, float(parameters.get("threshold", self.z_threshold)))
        except (TypeError, ValueError) as e:
            return {
                "data": None,
                "metadata": {"plugin_id": self.plugin_id, "method": method},
                "logs": [],
                "warnings": [],
                "errors": [str(e)],
            }
        warnings = []
        if len(result["outliers"]) > len(values) // 2:
            warnings.append("more than half of the values are outliers; the data may not be unimodal")
        return {
            "data": result,
            "metadata": {"plugin_id": self.plugin_id, "method": method, "count": len(values)},
            "logs": logs + [f"Processed {len(values)} values, found {len(result['outliers'])} outliers"],
            "warnings": warnings,
            "errors": [],
        }

    def iqr(self, values: List[float], k: float):
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        low, high = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        return self.split(values, lambda v: v < low or v > high, {"low": low, "high": high}), [
            f"IQR fences [{low:g}, {high:g}] with k={k:g}"
        ]

    def zscore(self, values: List[float], threshold: float):
        mean = statistics.fmean(values)
        stdev = statistics.pstdev(values)
        if stdev == 0:
            return self.split(values, lambda v: False, {"mean": mean, "stdev": 0.0}), [
                "all values are equal: no outliers"
            ]
        return self.split(
            values, lambda v: abs(v - mean) / stdev > threshold, {"mean": mean, "stdev": stdev}
        ), [f"z-score limit {threshold:g} (mean {mean:g}, stdev {stdev:g})"]

    @staticmethod
    def split(values, is_outlier, bounds):
        outliers = [{"index": i, "value": v} for i, v in enumerate(values) if is_outlier(v)]
        flagged = {o["index"] for o in outliers}
        return {
            "outliers": outliers,
            "inliers": [v for i, v in enumerate(values) if i not in flagged],
            "bounds": bounds,
        }

    def cleanup(self):
        """Nothing to release: no files or connections are kept."""
