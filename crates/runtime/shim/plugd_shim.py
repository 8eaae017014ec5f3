"""plugd's python-function shim: serves one plugin's Python code over OmniFlow NDJSON.

plugd embeds this file in its binary and runs it as
`python -u -s -c <this source> PLUGIN_DIR ENTRY_POINT [HANDLERS_JSON]`, so nothing has to
be written next to the plugin or made visible in the sandbox.

* ENTRY_POINT is `module:function` or `module:Class`.
* HANDLERS_JSON maps an action (or event) name to another `module:attr`, for manifests
  whose hooks or commands name their own handlers (Migraine `handler.module` +
  `handler.function`). A call whose action is not in the map goes to ENTRY_POINT.

What an attribute is decides how it is called:

* a function (Migraine): `fn(plugin_config, context) -> dict`;
* a subclass of `homelab.execution_plugins.base.ExecutionPlugin`, or any class with
  `validate_pre` (Wingman): one instance, made on the first request that needs it
  (with that request's `context.config` when the constructor takes an argument; a
  `meta` before any `exec` gives `{}`), then per call validate_pre -> execute ->
  validate_post, with rollback when execute raises or post-validation fails;
* any other class with `execute` (OmniScope SDK): `Class(context).execute(input_data)`.

The protocol is DESIGN.md section 2. Requests are served one at a time, in order: a
`cancel` therefore always arrives after the call it names has finished. stdout carries
responses only: the plugin's prints, and anything else written to file descriptor 1,
go to stderr (the host's log stream for this plugin).

Python 3.8+, standard library only. Module-level imports only, so a warm call imports
nothing.
"""

import asyncio
import inspect
import json
import os
import re
import sys
import traceback
import types

MALFORMED_JSON = 100
LINE_TOO_LONG = 101
MISSING_FIELD = 102
UNSUPPORTED_ACTION = 200
INVALID_ARGS = 201
PLUGIN_FAILED = 500
VALIDATION_FAILED = 422

DEFAULT_MAX_LINE = 131072
# How much of a bad line is searched for its id, so the host can match the error to a call.
LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*"([^"\\]{1,200})"')
ID_SNIFF_BYTES = 512

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=lambda o: _jsonable(o)).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), default=lambda o: _jsonable(o)).encode
_loads = json.loads


def _jsonable(value):
    """What plugins commonly return that json cannot encode by itself."""
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, ExecutionResult):
        return value.to_dict()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError("%s is not JSON serialisable" % type(value).__name__)


# --- homelab.execution_plugins.base: the Wingman plugin API ------------------------------------


class ExecutionAction(dict):
    """The action a Wingman plugin receives: a dict (`action.get("target")`,
    `action["params"]`) whose keys are also attributes (`action.target`).

    Keys: `action` and its alias `action_type` (the action name), `target`, `params`,
    `metadata`.
    """

    __slots__ = ()

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


class ExecutionResult:
    """The outcome of one lifecycle run, as the host reports it."""

    VALIDATION_ERROR = "VALIDATION_ERROR"
    EXECUTION_ERROR = "EXECUTION_ERROR"

    def __init__(self, success, data=None, error=None, error_code=None, **extra):
        self.success = bool(success)
        self.data = data
        self.error = error
        self.error_code = error_code
        self.extra = extra

    def to_dict(self):
        out = {"success": self.success, "data": self.data, "error": self.error, "error_code": self.error_code}
        out.update(self.extra)
        return out

    def __repr__(self):
        return "ExecutionResult(%r)" % (self.to_dict(),)


class ExecutionPlugin:
    """Base class of Wingman execution plugins (seed 004). Override the async lifecycle
    methods; the defaults let a plugin implement `execute` alone."""

    def __init__(self, config=None):
        self.config = dict(config or {})

    @property
    def plugin_id(self):
        return os.environ.get("PLUGD_PLUGIN_ID") or type(self).__name__

    @property
    def supported_actions(self):
        return []

    async def validate_pre(self, action):
        return True, "Validation passed"

    async def execute(self, action):
        raise NotImplementedError("%s does not implement execute()" % type(self).__name__)

    async def validate_post(self, action, result):
        return True, "Post-validation passed"

    async def rollback(self, action, result=None):
        return False


def _install_wingman_api():
    """Puts `homelab.execution_plugins.base` in sys.modules, so `from
    homelab.execution_plugins.base import ExecutionPlugin` works unmodified."""
    names = ["homelab", "homelab.execution_plugins", "homelab.execution_plugins.base"]
    modules = []
    for name in names:
        module = sys.modules.get(name) or types.ModuleType(name)
        if name != names[-1] and not hasattr(module, "__path__"):
            module.__path__ = []
        sys.modules[name] = module
        modules.append(module)
    modules[0].execution_plugins = modules[1]
    modules[1].base = modules[2]
    base = modules[2]
    for cls in (ExecutionPlugin, ExecutionAction, ExecutionResult):
        cls.__module__ = base.__name__
        setattr(base, cls.__name__, cls)
    base.VALIDATION_ERROR = ExecutionResult.VALIDATION_ERROR
    base.EXECUTION_ERROR = ExecutionResult.EXECUTION_ERROR


# --- calling plugin code --------------------------------------------------------------------


class PluginError(Exception):
    """A call failed in a way that is reported as an error response with this code."""

    def __init__(self, code, message, body=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.body = body


class Shim:
    def __init__(self, plugin_dir, entry, handlers):
        self.plugin_dir = plugin_dir
        self.entry = entry
        self.handlers = handlers
        self.load_error = None
        self._known = None
        self.targets = {}  # "module:attr" -> Target
        # One loop for the life of the process: creating one per call costs more than
        # most plugin calls.
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    def load(self):
        """Imports every named module once; a failure is kept for `health` to report."""
        for spec in [self.entry] + sorted(set(self.handlers.values())):
            if spec in self.targets:
                continue
            try:
                self.targets[spec] = Target(spec, resolve(spec), self)
            except (Exception, SystemExit):
                traceback.print_exc()
                last = traceback.format_exception_only(*sys.exc_info()[:2])[-1].strip()
                self.load_error = "cannot load %s: %s" % (spec, last)
                return

    def run(self, value):
        """The value, awaited on the shared loop when it is awaitable."""
        if inspect.isawaitable(value):
            return self.loop.run_until_complete(value)
        return value

    def target_for(self, payload):
        action = payload.get("action")
        point = payload.get("extension_point")
        spec = self.handlers.get(action) if isinstance(action, str) else None
        if spec is None and isinstance(point, str):
            spec = self.handlers.get(point)
        return self.targets[spec or self.entry]

    def known_actions(self, config=None):
        """The action names this plugin answers, when it declares any (manifest
        actions, hook events, Wingman `supported_actions`), plus the entry's own
        name; `None` when it declares none, and every action reaches the entry."""
        if self._known is None:
            names = set(self.actions(config))
            self._known = (names | {self.entry.partition(":")[2]}) if names else False
        return self._known or None

    def actions(self, config=None):
        names = set(k for k in self.handlers)
        entry = self.targets.get(self.entry)
        if entry is not None:
            names.update(entry.declared_actions(config))
        return sorted(names)

    def cleanup(self):
        for target in self.targets.values():
            target.cleanup()


def resolve(spec):
    module_name, _, attr = spec.partition(":")
    module = __import__(module_name, fromlist=["_"])
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AttributeError("module %r has no attribute %r" % (module_name, attr)) from None


class Target:
    """One named attribute and how it is called."""

    def __init__(self, spec, obj, shim):
        self.spec = spec
        self.obj = obj
        self.shim = shim
        self.instance = None  # Wingman: created on the first call that needs it
        self.sdk_key = None  # OmniScope: the context the cached instance was built with
        if inspect.isclass(obj):
            if issubclass(obj, ExecutionPlugin) or hasattr(obj, "validate_pre"):
                self.style = "wingman"
            elif callable(getattr(obj, "execute", None)):
                self.style = "omniscope"
            else:
                raise TypeError(
                    "%s is a class with neither validate_pre/execute (Wingman ExecutionPlugin) "
                    "nor execute(input_data) (OmniScope SDK); plugd cannot call it" % spec
                )
        elif callable(obj):
            self.style = "function"
        else:
            raise TypeError("%s is not a function or class (it is of type %s)" % (spec, type(obj).__name__))

    def declared_actions(self, config=None):
        if self.style != "wingman":
            return []
        try:
            # The instance is made once; from a call, with that call's config.
            actions = self.wingman(config or {}).supported_actions
            return [a for a in actions if isinstance(a, str)]
        except Exception:
            traceback.print_exc()
            return []

    def call(self, payload, args):
        if self.style == "function":
            return self.call_function(payload, args)
        if self.style == "wingman":
            return self.call_wingman(payload, args)
        return self.call_sdk(payload, args)

    # Migraine: fn(plugin_config, context) -> dict
    def call_function(self, payload, args):
        config = _context(payload).get("config") or {}
        context = dict(args)
        action = payload.get("action")
        if action is not None:
            context.setdefault("action", action)
        if payload.get("extension_point") is not None:
            context.setdefault("extension_point", payload["extension_point"])
        context.setdefault("plugin_config", config)
        result = self.shim.run(self.obj(config, context))
        if isinstance(result, dict) and _failed(result):
            raise PluginError(_code(result), _message(result, "the handler reported failure"), result)
        return result

    # Wingman: validate_pre -> execute -> validate_post (-> rollback)
    def wingman(self, config):
        if self.instance is None:
            cls = self.obj
            try:
                inspect.signature(cls).bind(config)
                takes_config = True
            except (TypeError, ValueError):
                takes_config = False
            self.instance = cls(config) if takes_config else cls()
        return self.instance

    def call_wingman(self, payload, args):
        plugin = self.wingman(_context(payload).get("config") or {})
        rest = {k: v for k, v in args.items() if k not in ("target", "metadata", "params")}
        params = args.get("params")
        if params is None:
            params = rest
        name = payload.get("action")
        action = ExecutionAction(
            action=name,
            action_type=name,
            target=args.get("target"),
            params=params,
            metadata=args.get("metadata") or {},
        )
        result = self.shim.run(_lifecycle(plugin, action))
        if not result.success:
            code = PLUGIN_FAILED if result.error_code == ExecutionResult.EXECUTION_ERROR else VALIDATION_FAILED
            raise PluginError(code, result.error or "the plugin failed", result.to_dict())
        return result.to_dict()

    # OmniScope SDK: Class(context).execute(input_data)
    def call_sdk(self, payload, args):
        given = _context(payload)
        context = {"config": given.get("config") or {}, "permissions": given.get("permissions") or []}
        # Left out rather than empty when unknown (a bare run outside plugd), so the
        # plugin's own `context.get("plugin_id", default)` applies.
        plugin_id = given.get("plugin_id") or os.environ.get("PLUGD_PLUGIN_ID")
        if plugin_id:
            context["plugin_id"] = plugin_id
            context["plugin_name"] = given.get("plugin_name") or plugin_id
        key = _dumps_ascii(context)
        if self.instance is None or key != self.sdk_key:
            self.cleanup()
            self.instance = self.obj(context)
            self.sdk_key = key
        data = payload["input_data"] if "input_data" in payload else (args or None)
        input_data = {"data": data, "parameters": payload.get("parameters") or {}}
        if payload.get("extension_point") is not None:
            input_data["extension_point"] = payload["extension_point"]
        result = self.shim.run(self.instance.execute(input_data))
        if isinstance(result, dict):
            errors = result.get("errors")
            if errors:
                if isinstance(errors, (list, tuple)):
                    message = "; ".join(str(e) for e in errors)
                else:
                    message = str(errors)
                raise PluginError(_code(result), message, result)
            if _failed(result):
                raise PluginError(_code(result), _message(result, "the plugin reported failure"), result)
        return result

    def cleanup(self):
        if self.instance is not None and callable(getattr(self.instance, "cleanup", None)):
            try:
                self.shim.run(self.instance.cleanup())
            except Exception:
                traceback.print_exc()


async def _lifecycle(plugin, action):
    try:
        ok, why = _verdict(await _maybe(plugin.validate_pre(action)), "validate_pre")
    except Exception as exc:
        traceback.print_exc()
        return ExecutionResult(False, error="validate_pre raised %s" % _describe(exc), error_code=ExecutionResult.VALIDATION_ERROR)
    if not ok:
        return ExecutionResult(False, error=why or "pre-validation failed", error_code=ExecutionResult.VALIDATION_ERROR, stage="validate_pre")
    try:
        data = await _maybe(plugin.execute(action))
    except Exception as exc:
        traceback.print_exc()
        rolled_back = await _rollback(plugin, action, None)
        return ExecutionResult(
            False,
            error="execute raised %s" % _describe(exc),
            error_code=ExecutionResult.EXECUTION_ERROR,
            stage="execute",
            rolled_back=rolled_back,
        )
    if isinstance(data, ExecutionResult):
        data = data.to_dict()
    try:
        ok, why = _verdict(await _maybe(plugin.validate_post(action, data)), "validate_post")
    except Exception as exc:
        traceback.print_exc()
        ok, why = False, "validate_post raised %s" % _describe(exc)
    if not ok:
        rolled_back = await _rollback(plugin, action, data)
        return ExecutionResult(
            False,
            data=data,
            error=why or "post-validation failed",
            error_code=ExecutionResult.VALIDATION_ERROR,
            stage="validate_post",
            rolled_back=rolled_back,
        )
    return ExecutionResult(True, data=data)


async def _rollback(plugin, action, result):
    try:
        return bool(await _maybe(plugin.rollback(action, result)))
    except Exception:
        traceback.print_exc()
        return False


async def _maybe(value):
    if inspect.isawaitable(value):
        return await value
    return value


def _verdict(value, method):
    """validate_* return (ok, message); a bare bool is accepted too."""
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], bool):
        return value[0], str(value[1]) if len(value) > 1 and value[1] is not None else ""
    raise TypeError("%s returned %r; it must return (bool, message)" % (method, value))


def _context(payload):
    context = payload.get("context")
    return context if isinstance(context, dict) else {}


def _failed(result):
    return result.get("success") is False or result.get("status") in ("error", "failed", "failure")


def _code(result):
    code = result.get("code")
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return code
    return PLUGIN_FAILED


def _message(result, fallback):
    for key in ("error", "message", "output"):
        value = result.get(key)
        if value:
            return value if isinstance(value, str) else _dumps_ascii(value)
    return fallback


def _describe(exc):
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


# --- the protocol loop ------------------------------------------------------------------------


def _take_stdio():
    """Keeps private copies of fds 0 and 1 for the protocol, then points fd 1 at stderr
    and fd 0 at /dev/null: `print`, `os.write(1, ...)` and child processes can then
    never write into the response stream or read requests meant for the shim."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    os.dup2(2, 1)
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    except OSError:
        pass
    sys.stdout = sys.stderr
    sys.stdin = open(os.devnull) if os.path.exists(os.devnull) else sys.stdin
    return open(proto_in, "rb", buffering=65536), open(proto_out, "wb", buffering=0)


def _max_line():
    raw = os.environ.get("OMNIFLOW_PLUGIN_MAX_LINE", "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_LINE
    return value if value > 0 else DEFAULT_MAX_LINE


def _sniff_id(head):
    match = LEADING_ID.match(head[:ID_SNIFF_BYTES])
    return match.group(1).decode("utf-8", "replace") if match else None


def _ok(rid, body):
    return {"id": rid, "status": "ok", "code": 0, "body": body}


def _error(rid, code, message, body=None):
    response = {"id": rid, "status": "error", "code": code, "message": message}
    if body is not None:
        response["body"] = body
    return response


class Server:
    def __init__(self, shim, inp, out, max_line):
        self.shim = shim
        self.inp = inp
        self.out = out
        self.max_line = max_line

    def send(self, response):
        try:
            line = _dumps(response).encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: \u-escape everything instead
            line = _dumps_ascii(response).encode("ascii")
        except (TypeError, ValueError) as exc:
            line = _dumps(_error(response.get("id"), PLUGIN_FAILED, "the result cannot be sent as JSON: %s" % exc)).encode("utf-8")
        if len(line) > self.max_line:
            line = _dumps(
                _error(
                    response.get("id"),
                    LINE_TOO_LONG,
                    "the response is %d bytes, over OMNIFLOW_PLUGIN_MAX_LINE=%d; return less data or raise the limit"
                    % (len(line), self.max_line),
                )
            ).encode("utf-8")
        self.out.write(line + b"\n")

    def read(self):
        """(line, None), (None, (length, head)) for an over-long line, or None at EOF."""
        limit = self.max_line
        line = self.inp.readline(limit + 2)  # room for "\r\n"
        if not line:
            return None
        if line.endswith(b"\n") or len(line) <= limit:
            body = line.rstrip(b"\r\n")
            if len(body) <= limit:
                return body, None
        head = line[:ID_SNIFF_BYTES]
        length = len(line)
        while not line.endswith(b"\n"):
            line = self.inp.readline(65536)
            if not line:
                break
            length += len(line)
        return None, (length, head)

    def serve(self):
        while True:
            got = self.read()
            if got is None:
                return 0
            line, too_long = got
            if too_long is not None:
                length, head = too_long
                self.send(
                    _error(
                        _sniff_id(head),
                        LINE_TOO_LONG,
                        "request line of about %d bytes is over OMNIFLOW_PLUGIN_MAX_LINE=%d" % (length, self.max_line),
                    )
                )
                continue
            if not line.strip():
                continue
            try:
                request = _loads(line)
            except ValueError as exc:
                self.send(_error(_sniff_id(line), MALFORMED_JSON, "malformed JSON: %s" % exc))
                continue
            if not isinstance(request, dict):
                self.send(_error(None, MALFORMED_JSON, "a request must be a JSON object"))
                continue
            try:
                response, keep_going = self.handle(request)
            except Exception as exc:  # a bug in the shim itself: report it, keep serving
                traceback.print_exc()
                response, keep_going = _error(request.get("id"), PLUGIN_FAILED, "internal error: %s" % _describe(exc)), True
            self.send(response)
            if not keep_going:
                return 0

    def handle(self, request):
        rid = request.get("id")
        if not isinstance(rid, str) or not rid:
            return _error(None, MISSING_FIELD, "request has no string `id`"), True
        kind = request.get("type")
        if not isinstance(kind, str):
            return _error(rid, MISSING_FIELD, "request has no string `type`"), True
        payload = request.get("payload")
        if payload is None:
            payload = {}
        elif not isinstance(payload, dict):
            return _error(rid, INVALID_ARGS, "`payload` must be an object or null"), True
        shim = self.shim
        if kind == "exec":
            if shim.load_error is not None:
                return _error(rid, PLUGIN_FAILED, shim.load_error), True
            return self.exec(rid, payload), True
        if kind == "health":
            if shim.load_error is not None:
                return _error(rid, PLUGIN_FAILED, shim.load_error), True
            style = shim.targets[shim.entry].style
            return _ok(rid, {"status": "healthy", "style": style, "python": sys.version.split()[0]}), True
        if kind == "shutdown":
            shim.cleanup()
            return _ok(rid, {"status": "bye"}), False
        if kind == "meta":
            body = {"runtime": "python-function", "entry_point": shim.entry, "handlers": shim.handlers}
            if shim.load_error is None:
                body["style"] = shim.targets[shim.entry].style
                body["actions"] = shim.actions()
            else:
                body["error"] = shim.load_error
            return _ok(rid, body), True
        if kind == "cancel":
            return _error(rid, UNSUPPORTED_ACTION, "not cancellable: the python-function shim serves one call at a time, so the call has already finished"), True
        return _error(rid, UNSUPPORTED_ACTION, "unsupported request type %r; expected health, exec, meta, cancel or shutdown" % kind), True

    def exec(self, rid, payload):
        args = payload.get("args")
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            return _error(rid, INVALID_ARGS, "`payload.args` must be an object")
        action = payload.get("action")
        point = payload.get("extension_point")
        if (
            isinstance(action, str)
            and action
            and self.shim.known_actions(_context(payload).get("config")) is not None
            and action not in self.shim.known_actions()
            and not (isinstance(point, str) and point in self.shim.handlers)
        ):
            return _error(
                rid,
                UNSUPPORTED_ACTION,
                "unknown action %r; known: %s" % (action, ", ".join(sorted(self.shim.known_actions()))),
            )
        try:
            target = self.shim.target_for(payload)
            body = target.call(payload, args)
        except PluginError as exc:
            return _error(rid, exc.code, exc.message, exc.body)
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            return _error(rid, PLUGIN_FAILED, _describe(exc))
        return _ok(rid, body)


def main(argv):
    inp, out = _take_stdio()
    if len(argv) < 2:
        sys.stderr.write("usage: plugd-shim PLUGIN_DIR ENTRY_POINT [HANDLERS_JSON]\n")
        return 2
    plugin_dir, entry = argv[0], argv[1]
    try:
        handlers = _loads(argv[2]) if len(argv) > 2 else {}
    except ValueError:
        handlers = None
    if not isinstance(handlers, dict) or not all(isinstance(v, str) for v in handlers.values()):
        sys.stderr.write("plugd-shim: HANDLERS_JSON must be an object of action -> 'module:attr'\n")
        return 2
    # `-c` puts the working directory (writable, the plugin's work dir) first on the
    # path; only the plugin's own files should shadow anything.
    sys.path[:] = [p for p in sys.path if p not in ("", ".")]
    sys.path.insert(0, plugin_dir)
    _install_wingman_api()
    shim = Shim(plugin_dir, entry, handlers)
    shim.load()
    try:
        return Server(shim, inp, out, _max_line()).serve()
    except BrokenPipeError:
        # The host closed our stdout: it has stopped listening, so there is no one
        # left to answer.
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
