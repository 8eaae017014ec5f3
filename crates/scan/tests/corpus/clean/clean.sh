#!/bin/bash
set -euo pipefail
rm -rf "./build"
chmod 755 run.sh
echo "done"
