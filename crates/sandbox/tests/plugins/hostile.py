"""A hostile plugin: each mode tries one escape and prints `name=ok|blocked detail`.

`ok` means the attempt succeeded (the sandbox failed to stop it); `blocked`
means it was refused. The escape suite runs every mode sandboxed (expecting
`blocked`) and, where meaningful, trusted (expecting `ok`), so a `blocked`
proves the sandbox and not a broken plugin.
"""
import ctypes
import errno
import os
import socket
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)


def report(name, ok, detail=""):
    print(f"{name}={'ok' if ok else 'blocked'} {detail}".strip(), flush=True)


def err():
    e = ctypes.get_errno()
    return f"{errno.errorcode.get(e, e)}"


def try_call(name, fn):
    try:
        detail = fn()
        report(name, True, str(detail or ""))
    except Exception as e:  # noqa: BLE001 - every failure is a "blocked"
        report(name, False, f"{type(e).__name__}: {e}")


mode = sys.argv[1]
arg = sys.argv[2] if len(sys.argv) > 2 else ""

if mode == "secret":
    try_call("secret", lambda: open(arg).read().strip())
    # Through /proc: the file as seen by a host process (plugd's stand-in).
    decoy = sys.argv[3]
    try_call("secret_via_proc_root", lambda: open(f"/proc/{decoy}/root" + arg).read().strip())

elif mode == "env":
    decoy = arg
    env1 = b""
    try:
        env1 = open("/proc/1/environ", "rb").read()
    except OSError:
        pass
    report("proc1_env", b"PLUGD_TEST_SECRET" in env1)
    try:
        cmd1 = open("/proc/1/cmdline", "rb").read().replace(b"\0", b" ").decode()
    except OSError as e:
        cmd1 = str(e)
    print(f"pid1_cmdline {cmd1}", flush=True)
    def host_env():
        text = open(f"/proc/{decoy}/environ", "rb").read().decode(errors="replace")
        if "PLUGD_TEST_SECRET" not in text:
            raise OSError("readable, but the secret is not there")
        return "secret visible"
    try_call("host_env", host_env)
    report("own_env", "PLUGD_TEST_SECRET" in os.environ)

elif mode == "write":
    for path in [arg, "/etc/pwned", "/usr/pwned", "/plugin/pwned", "/pwned", "/proc/sys/kernel/pwned"]:
        def w(p=path):
            with open(p, "w") as f:
                f.write("pwned")
            return p
        try_call("write " + path, w)
    try_call("write_work", lambda: open("/work/ok.txt", "w").write("fine"))
    try_call("write_tmp", lambda: open("/tmp/ok.txt", "w").write("fine"))

elif mode == "tcp":
    def connect():
        s = socket.create_connection(("127.0.0.1", int(arg)), timeout=2)
        s.sendall(b"escaped\n")
        s.close()
    try_call("tcp", connect)

elif mode == "dns":
    try_call("getaddrinfo", lambda: socket.getaddrinfo("example.com", 80))
    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A DNS query for example.com A, sent to the test's fake resolver.
        q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
        s.sendto(q, ("127.0.0.1", int(arg)))
    try_call("udp_resolver", udp)

elif mode == "memory":
    chunks = []
    mib = int(arg)
    for i in range(mib // 16):
        chunks.append(bytearray(16 * 1024 * 1024))
        print(f"allocated {(i + 1) * 16} MiB", flush=True)
    report("memory", True, f"{mib} MiB")

elif mode == "spin":
    print("spinning", flush=True)
    while True:
        pass

elif mode == "burn":
    # Accounting check: burn ~0.3 s of CPU and hold ~48 MiB.
    hold = bytearray(48 * 1024 * 1024)
    for i in range(0, len(hold), 4096):
        hold[i] = 1
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    report("burn", True)

elif mode == "ptrace":
    PTRACE_TRACEME, PTRACE_ATTACH, PTRACE_DETACH = 0, 16, 17
    # In a child, so the plugin itself is never left traced by its parent.
    child = os.fork()
    if child == 0:
        r = libc.ptrace(PTRACE_TRACEME, 0, None, None)
        os._exit(0 if r == 0 else ctypes.get_errno())
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    report("ptrace_traceme", code == 0, errno.errorcode.get(code, str(code)))
    pid = int(arg)
    r = libc.ptrace(PTRACE_ATTACH, pid, None, None)
    report("ptrace_attach_host", r == 0, err() if r else "")
    if r == 0:
        os.waitpid(pid, 0x40000000)  # __WALL
        libc.ptrace(PTRACE_DETACH, pid, None, None)

elif mode == "mount":
    os.makedirs("/tmp/m", exist_ok=True)
    r = libc.mount(b"none", b"/tmp/m", b"tmpfs", 0, None)
    report("mount", r == 0, err() if r else "")

elif mode == "module":
    fd = os.open("/dev/null", os.O_RDONLY)
    SYS_finit_module = 313
    r = libc.syscall(SYS_finit_module, fd, b"", 0)
    e = ctypes.get_errno()
    # EPERM: refused. Anything else (EINVAL/ENOEXEC for an empty image):
    # the kernel let us try, and a real module would have loaded.
    report("module", r == 0 or e != errno.EPERM, err())

elif mode == "namespace":
    CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET = 0x10000000, 0x00020000, 0x40000000
    for name, flag in [("unshare_user", CLONE_NEWUSER), ("unshare_mount", CLONE_NEWNS), ("unshare_net", CLONE_NEWNET)]:
        pid = os.fork()
        if pid == 0:
            r = libc.unshare(flag)
            os._exit(0 if r == 0 else ctypes.get_errno())
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        report(name, code == 0, errno.errorcode.get(code, str(code)))

elif mode == "kill":
    try_call("kill_host", lambda: os.kill(int(arg), 9))

elif mode == "flood":
    line = "x" * 65535 + "\n"
    while True:
        sys.stdout.write(line)
        sys.stderr.write(line)

elif mode == "serve":
    # An HTTP plugin with a hard-coded port, as Stage7 containers have.
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"instance {arg}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.HTTPServer(("127.0.0.1", 8080), H).serve_forever()

elif mode == "hello":
    report("hello", True, open("/plugin/data.txt").read().strip())

else:
    report("unknown_mode", False, mode)
    sys.exit(2)
