#!/usr/bin/env bash
# bash-echo: an NDJSON plugin in plain bash (no jq): health, exec echo, meta, shutdown.
#
# Limits of parsing JSON with bash patterns, on purpose kept simple:
# * Fields are found by pattern, not parsed: the FIRST `"key":"…"` in the line wins.
#   plugd writes `id` and `type` first, so those are the envelope's; `message` is found
#   in `payload.args` or flat in `payload` (plugd sends both, with the same value).
# * `id`, `type`, `action` and `message` must be JSON strings. Their escaped text is
#   echoed back verbatim, which is valid JSON because it was valid JSON.
# * Malformed JSON is only detected roughly (a line must look like an object); any
#   line without a string `id` is answered with code 102 and `"id":null`.
# * OMNIFLOW_PLUGIN_MAX_LINE is enforced before parsing: `read -n` never takes more than
#   the limit + 1 bytes, the rest of an over-long line is drained in 64 KiB chunks.
set -u
export LC_ALL=C # byte semantics for read -n and ${#var}

MAX_LINE=${OMNIFLOW_PLUGIN_MAX_LINE:-131072}
[[ $MAX_LINE =~ ^[1-9][0-9]{0,9}$ ]] || MAX_LINE=131072
LOG_JSON=${OMNIFLOW_LOG_JSON:-false}

log() { # level message
  if [[ $LOG_JSON == true ]]; then
    printf '{"level":"%s","plugin":"bash-echo","msg":"%s"}\n' "$1" "$2" >&2
  else
    printf '%s bash-echo: %s\n' "${1^^}" "$2" >&2
  fi
}

# field KEY LINE: sets FIELD to the raw (still escaped) text of the first "KEY":"…".
field() {
  local re="\"$1\"[[:space:]]*:[[:space:]]*\"(([^\"\\\\]|\\\\.)*)\""
  if [[ $2 =~ $re ]]; then
    FIELD=${BASH_REMATCH[1]}
    return 0
  fi
  FIELD=
  return 1
}

ok() { printf '{"id":"%s","status":"ok","code":0,"body":%s}\n' "$1" "$2"; }
fail() { # id-json code message (message must not need escaping)
  printf '{"id":%s,"status":"error","code":%d,"message":"%s"}\n' "$1" "$2" "$3"
}

log info "ready (max line $MAX_LINE bytes)"
while :; do
  line=
  IFS= read -r -n $((MAX_LINE + 1)) line
  status=$?
  if ((status != 0)) && [[ -z $line ]]; then
    log info "stdin closed, exiting"
    exit 0
  fi
  if ((${#line} > MAX_LINE)); then
    # Drain the rest of the line without keeping it.
    while IFS= read -r -n 65536 chunk && ((${#chunk} == 65536)); do :; done
    log warn "request line over the $MAX_LINE-byte limit"
    id=null
    field id "${line:0:512}" && id="\"$FIELD\""
    fail "$id" 101 "request line is over the $MAX_LINE-byte limit"
    continue
  fi
  line=${line%$'\r'}
  [[ $line =~ ^[[:space:]]*$ ]] && continue
  if [[ ! $line =~ ^[[:space:]]*\{.*\}[[:space:]]*$ ]]; then
    fail null 100 "malformed JSON: a request must be one JSON object per line"
    continue
  fi
  if ! field id "$line"; then
    fail null 102 "request has no string id"
    continue
  fi
  id=$FIELD
  if ! field type "$line"; then
    fail "\"$id\"" 102 "request has no string type"
    continue
  fi
  case $FIELD in
    health)
      ok "$id" '{"status":"healthy","plugin":"bash-echo","version":"1.0.0"}'
      ;;
    meta)
      ok "$id" '{"plugin":"bash-echo","version":"1.0.0","actions":[{"name":"echo","description":"Returns the message it was given."}]}'
      ;;
    shutdown)
      ok "$id" '{"status":"bye"}'
      log info "shutting down"
      exit 0
      ;;
    exec)
      if ! field action "$line" || [[ $FIELD != echo ]]; then
        fail "\"$id\"" 200 "unknown action; this plugin only knows echo"
      elif field message "$line"; then
        ok "$id" "{\"action\":\"echo\",\"message\":\"$FIELD\"}"
      else
        fail "\"$id\"" 201 "echo needs a string message argument"
      fi
      ;;
    *)
      fail "\"$id\"" 200 "unsupported request type"
      ;;
  esac
done
