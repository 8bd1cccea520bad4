#!/bin/sh
# An executable in the sample image: run it from the mounted disk.
echo "hello from $(cat "$(dirname "$0")/../etc/hostname")"
