#!/usr/bin/env bash
# Seeds an embedded bucket with sample objects and mounts it; see `make demo`.
set -euo pipefail
dir=$1 bin=$2
export PATH=/usr/local/go/bin:$PATH
mkdir -p "$dir/store" "$dir/mnt"
if mountpoint -q "$dir/mnt"; then
	echo "already mounted at $dir/mnt; stop it with: umount $dir/mnt"
	exit 0
fi
go run ./cmd/demo-seed "$dir/store" demo-bucket
"$bin" --embedded-store "$dir/store" --log-directory "$dir/logs" demo-bucket "$dir/mnt"
cat <<MSG

The bucket 'demo-bucket' (served in-process from $dir/store) is mounted at $dir/mnt.

  ls -la $dir/mnt
  cat $dir/mnt/README.txt
  ls -l $dir/mnt/photos/2024
  cp $dir/mnt/data/random-64MiB.bin /tmp/ && cmp /tmp/random-64MiB.bin $dir/mnt/data/random-64MiB.bin

Stop it with:   umount $dir/mnt      (logs are in $dir/logs)
MSG
