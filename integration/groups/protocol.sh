#!/bin/bash
# protocol group: our own raw-socket client (protocol.py) checks the handshake rules
# that real clients never exercise.
# shellcheck source=groups/lib.bash
source "$NBDSDK_GROUPS_DIR/lib.bash"

run_python raw protocol.py
finish
