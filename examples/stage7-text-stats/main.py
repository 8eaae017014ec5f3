#!/usr/bin/env python3
"""TEXT_STATS: a Stage7 python plugin run by plugd's stdio-batch runtime (seed 002).

stdin:  a JSON array of [name, {"value", "valueType", "args"}] pairs (Stage7 serializes its
        input Map this way); an object of name -> {"value", ...} is accepted too.
stdout: a JSON array of {"success", "name", "resultType", "result", "resultDescription",
        "error"?}.
argv[1] is the plugin root (unused: the plugin needs no files of its own).
Standard library only.
"""

import json
import re
import sys
from collections import Counter

STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have he her his i in is it its of on or she so"
    " that the their them they this to was we were will with you your".split()
)
MAX_TOP_N = 100


def result(name, result_type, value, description):
    return {
        "success": True,
        "name": name,
        "resultType": result_type,
        "result": value,
        "resultDescription": description,
    }


def error(message):
    return {
        "success": False,
        "name": "error",
        "resultType": "error",
        "result": None,
        "resultDescription": "TEXT_STATS failed",
        "error": message,
    }


def read_inputs(raw):
    """Returns {name: value} from either accepted input shape."""
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    if not isinstance(pairs, list):
        raise ValueError("input must be a JSON array of [name, {value, ...}] pairs")
    inputs = {}
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)):
            raise ValueError("each input must be a [name, {value, valueType, args}] pair")
        name, body = pair
        # Older Stage7 hosts send `inputValue`; plain values are accepted as they are.
        if isinstance(body, dict) and ("value" in body or "inputValue" in body):
            inputs[name] = body.get("value", body.get("inputValue"))
        else:
            inputs[name] = body
    return inputs


def text_stats(text, top_n):
    words = re.findall(r"[A-Za-z0-9']+", text)
    sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()]
    lower = [w.lower().strip("'") for w in words]
    counted = Counter(w for w in lower if w and w not in STOP_WORDS)
    statistics = {
        "characters": len(text),
        "words": len(words),
        "sentences": len(sentences),
        "lines": len(text.splitlines()) if text else 0,
        "average_word_length": round(sum(map(len, words)) / len(words), 2) if words else 0,
    }
    top = [{"word": w, "count": c} for w, c in counted.most_common(top_n)]
    return statistics, top


def execute(inputs):
    text = inputs.get("text")
    if not isinstance(text, str):
        return [error("missing required input `text` (a string)")]
    top_n = inputs.get("top_n", 5)
    if isinstance(top_n, str) and top_n.strip().isdigit():
        top_n = int(top_n)
    if isinstance(top_n, bool) or not isinstance(top_n, (int, float)) or not 0 <= top_n <= MAX_TOP_N:
        return [error(f"`top_n` must be a number from 0 to {MAX_TOP_N}")]
    statistics, top = text_stats(text, int(top_n))
    return [
        result("statistics", "object", statistics, "Counts of characters, words, sentences and lines"),
        result("top_words", "array", top, f"The {len(top)} most frequent words"),
    ]


def main():
    try:
        outputs = execute(read_inputs(json.loads(sys.stdin.read() or "null")))
    except (ValueError, TypeError) as exc:
        outputs = [error(str(exc))]
    json.dump(outputs, sys.stdout)
    sys.stdout.write("\n")
    return 0 if all(o["success"] for o in outputs) else 1


if __name__ == "__main__":
    sys.exit(main())
