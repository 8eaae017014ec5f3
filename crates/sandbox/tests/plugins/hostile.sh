#!/bin/bash
# A hostile plugin in Bash: each mode tries one escape and prints
# `name=ok|blocked`. See hostile.py.
mode=$1
arg=$2
try() { # name command...
    local name=$1; shift
    if out=$("$@" 2>&1); then echo "$name=ok $out"; else echo "$name=blocked $out"; fi
}
case "$mode" in
hello) try hello cat "$(dirname "$0")/data.txt" ;;
secret) try secret cat "$arg" ;;
write)
    try write_outside sh -c "echo pwned > '$arg'"
    try write_etc sh -c 'echo pwned > /etc/pwned'
    try write_work sh -c 'echo fine > "$HOME/ok.txt"'
    ;;
tcp) try tcp bash -c "exec 3<>/dev/tcp/127.0.0.1/$arg && echo escaped >&3" ;;
kill) try kill_host kill -9 "$arg" ;;
unshare) try unshare unshare --user true ;;
mount) mkdir -p /tmp/m; try mount mount -t tmpfs none /tmp/m ;;
forkbomb)
    echo "forking"
    bomb() { bomb | bomb & }
    # Keep bombing: a bomb that gives up would let the test pass for the
    # wrong reason.
    while :; do bomb; sleep 0.2; done
    ;;
spin) while :; do :; done ;;
flood) yes "$(printf 'y%.0s' {1..1000})" ;;
*) echo "unknown_mode=blocked $mode"; exit 2 ;;
esac
