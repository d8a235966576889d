#!/usr/bin/env bash
# Builds (once, cached) and starts the pinned MinIO server on loopback for the suites that run
# against a real S3-compatible store, and prints the environment they need, ready for eval:
#
#   eval "$(scripts/minio.sh start)"    # MOUNT_S3_TEST_ENDPOINT=... AWS_ACCESS_KEY_ID=... ...
#   scripts/minio.sh stop
#
# MinIO is a test peer, not a dependency: it is built with the Go toolchain from the module
# proxy at the version below and never linked into mount-s3.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH

MINIO_VERSION=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
CACHE=${MOUNT_S3_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mount-s3}
BIN=$CACHE/minio-$MINIO_VERSION/minio
RUN=${MINIO_RUN_DIR:-/tmp/mount-s3-minio}
ADDR=${MINIO_ADDR:-127.0.0.1:19000}
USER_=mounts3test
PASS=mounts3test-secret
BUCKET=mount-s3-store-suite

build() {
	if [ -x "$BIN" ]; then return; fi
	echo "building MinIO $MINIO_VERSION (cached in $(dirname "$BIN"))" >&2
	mkdir -p "$(dirname "$BIN")"
	# -trimpath and no VCS stamp: the module zip is all there is.
	GOFLAGS="-buildvcs=false -trimpath" GOBIN="$(dirname "$BIN")" go install "github.com/minio/minio@$MINIO_VERSION" >&2
}

start() {
	build
	stop >/dev/null 2>&1 || true
	rm -rf "$RUN/data"
	mkdir -p "$RUN/data"
	MINIO_ROOT_USER=$USER_ MINIO_ROOT_PASSWORD=$PASS MINIO_BROWSER=off MINIO_UPDATE=off \
		nohup "$BIN" server "$RUN/data" --address "$ADDR" --quiet >"$RUN/log" 2>&1 &
	echo $! >"$RUN/pid"
	for _ in $(seq 1 100); do
		if curl -fsS "http://$ADDR/minio/health/ready" >/dev/null 2>&1; then break; fi
		sleep 0.2
	done
	if ! curl -fsS "http://$ADDR/minio/health/ready" >/dev/null 2>&1; then
		echo "MinIO did not become ready; its log:" >&2
		cat "$RUN/log" >&2
		exit 1
	fi
	# The store suite's bucket; the mount suites make a bucket per test themselves.
	curl -fsS -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$USER_:$PASS" "http://$ADDR/$BUCKET" >/dev/null
	cat <<EOF
export MOUNT_S3_TEST_ENDPOINT=http://$ADDR
export MOUNT_S3_TEST_BUCKET=$BUCKET
export MOUNT_S3_TEST_PATH_STYLE=1
export MOUNT_S3_TEST_REGION=us-east-1
export AWS_ACCESS_KEY_ID=$USER_
export AWS_SECRET_ACCESS_KEY=$PASS
EOF
}

stop() {
	if [ -f "$RUN/pid" ]; then
		kill "$(cat "$RUN/pid")" 2>/dev/null || true
		rm -f "$RUN/pid"
	fi
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 build|start|stop" >&2
	exit 2
	;;
esac
