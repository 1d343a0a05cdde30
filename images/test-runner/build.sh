#!/bin/sh
# Builds podrunner's test runner images without any registry (docs/test-bench.md):
#   localhost/podrunner-test-runner:latest  FROM scratch: busybox-static, fake-runner, a run.sh
#                                          that mimics GitHub's run.sh/run-helper.sh, an
#                                          externals folder with a marker file, the host's
#                                          static docker CLI when there is one.
#   localhost/podrunner-test-broken:latest  the same, but run.sh prints "broken image for tests"
#                                          and exits 3 at once (for back-off tests).
# Shaped like ghcr.io/actions/actions-runner (docs/github-runner.md): user runner (1001) in
# group docker (123), WORKDIR /home/runner, no ENTRYPOINT/CMD: callers run /home/runner/run.sh.
#
# Usage: images/test-runner/build.sh [--tag IMAGE] [--broken-tag IMAGE] [--binary PATH] [--force]
# Env:   PODRUNNER_TEST_IMAGE / PODRUNNER_TEST_BROKEN_IMAGE (default tags; the tests read the
#        same variables at compile time), PODMAN (default podman; may carry global flags), CARGO_TARGET_DIR (default
#        <workspace>/target), TEST_RUNNER_BUILD_DIR (default images/test-runner/build).
# Idempotent: when nothing that goes into the images changed, it only checks and exits.
# Run it as the user whose image storage should hold the images (root or rootless); a user
# without cargo (or without write access to the target dir) reuses an already built binary.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PODMAN=${PODMAN:-podman}
TAG=${PODRUNNER_TEST_IMAGE:-localhost/podrunner-test-runner:latest}
BROKEN_TAG=${PODRUNNER_TEST_BROKEN_IMAGE:-localhost/podrunner-test-broken:latest}
BINARY=
FORCE=0
TRIPLE=x86_64-unknown-linux-gnu
HASH_LABEL=io.podrunner.test-image.hash

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
        --tag=*) TAG=${1#--tag=}; shift ;;
        --broken-tag) BROKEN_TAG=${2:?--broken-tag needs a value}; shift 2 ;;
        --broken-tag=*) BROKEN_TAG=${1#--broken-tag=}; shift ;;
        --binary) BINARY=${2:?--binary needs a value}; shift 2 ;;
        --binary=*) BINARY=${1#--binary=}; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

say() { echo "test-runner: $*"; }
die() { echo "test-runner: error: $*" >&2; exit 1; }

is_static() {
    # ldd says "not a dynamic executable" or "statically linked" (static-pie) for static files.
    out=$(LC_ALL=C ldd "$1" 2>&1 || true)
    case "$out" in
        *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
        *) return 1 ;;
    esac
}

# --- fake-runner, static -------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BUILT="$TARGET_DIR/$TRIPLE/release/fake-runner"
if [ -z "$BINARY" ]; then
    can_build=0
    if command -v cargo >/dev/null 2>&1; then
        if [ -d "$TARGET_DIR" ]; then
            [ -w "$TARGET_DIR" ] && can_build=1
        else
            mkdir -p "$TARGET_DIR" 2>/dev/null && can_build=1
        fi
    fi
    if [ "$can_build" = 1 ]; then
        say "building fake-runner (static) in $TARGET_DIR"
        (cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
            CARGO_TARGET_DIR="$TARGET_DIR" \
            cargo build --quiet --release -p fake-runner --target "$TRIPLE")
    elif [ -x "$BUILT" ]; then
        say "cannot build here (no cargo or $TARGET_DIR not writable): using $BUILT"
    else
        die "cannot build fake-runner (no cargo or $TARGET_DIR not writable) and $BUILT does not exist; build it first or pass --binary PATH"
    fi
    BINARY=$BUILT
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable"
is_static "$BINARY" || die "$BINARY is not statically linked (build with RUSTFLAGS='-C target-feature=+crt-static')"
say "fake-runner: $BINARY"

# --- busybox-static and (optional) docker CLI ----------------------------------------------
BUSYBOX=/bin/busybox
if ! { [ -x "$BUSYBOX" ] && is_static "$BUSYBOX"; }; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing busybox-static"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
    fi
    { [ -x "$BUSYBOX" ] && is_static "$BUSYBOX"; } ||
        die "$BUSYBOX is missing or not static: apt-get install busybox-static"
fi
DOCKER=$(command -v docker 2>/dev/null || true)
if [ -n "$DOCKER" ] && ! is_static "$DOCKER"; then
    DOCKER=
fi

# --- up to date? ---------------------------------------------------------------------------
# Everything that goes into the images: the binaries, run.sh and this script (which holds the
# Containerfiles and the broken run.sh).
HASH=$(cat "$BINARY" "$BUSYBOX" ${DOCKER:+"$DOCKER"} "$HERE/run.sh" "$HERE/build.sh" |
    sha256sum | cut -c1-64)
image_hash() {
    $PODMAN image inspect --format "{{index .Labels \"$HASH_LABEL\"}}" "$1" 2>/dev/null || true
}
if [ "$FORCE" = 0 ] && [ "$(image_hash "$TAG")" = "$HASH" ] && [ "$(image_hash "$BROKEN_TAG")" = "$HASH" ]; then
    say "$TAG and $BROKEN_TAG are up to date"
    exit 0
fi

# --- assemble the build context ------------------------------------------------------------
BUILD_DIR=${TEST_RUNNER_BUILD_DIR:-$HERE/build}
if ! { mkdir -p "$BUILD_DIR" 2>/dev/null && [ -w "$BUILD_DIR" ]; }; then
    BUILD_DIR=${TMPDIR:-/tmp}/podrunner-test-runner-build-$(id -u)
    mkdir -p "$BUILD_DIR"
fi
CTX="$BUILD_DIR/context"
rm -rf "$CTX"
R="$CTX/rootfs"
mkdir -p "$R/bin" "$R/usr/local/bin" "$R/etc" "$R/tmp" "$R/var/tmp" "$R/root" "$R/home" \
    "$CTX/home-runner"
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 700 "$R/root"

cp "$BUSYBOX" "$R/bin/busybox"
chmod 755 "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
    case "$applet" in ''|bin/busybox) continue ;; esac
    mkdir -p "$R/$(dirname "$applet")"
    ln -sf /bin/busybox "$R/$applet"
done
cp "$BINARY" "$R/usr/local/bin/fake-runner"
chmod 755 "$R/usr/local/bin/fake-runner"
if [ -n "$DOCKER" ]; then
    cp "$DOCKER" "$R/usr/local/bin/docker"
    chmod 755 "$R/usr/local/bin/docker"
    say "docker CLI: $DOCKER"
fi

cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
runner:x:1001:1001:runner:/home/runner:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
sudo:x:27:runner
docker:x:123:runner
runner:x:1001:
nogroup:x:65534:
EOF
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$R/etc/hosts"
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"

cp "$HERE/run.sh" "$CTX/home-runner/run.sh"
chmod 755 "$CTX/home-runner/run.sh"
# Like the runner's externals folder (node for JavaScript actions), which the runner mounts into
# container jobs at /__e: podrunner maps it to a host copy (docs/docker.md).
mkdir -p "$CTX/home-runner/externals"
echo "externals-of-the-test-image" >"$CTX/home-runner/externals/podrunner-marker"
cat >"$CTX/broken-run.sh" <<'EOF'
#!/bin/sh
echo "broken image for tests"
exit 3
EOF
chmod 755 "$CTX/broken-run.sh"

cat >"$CTX/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=1001:1001 home-runner/ /home/runner/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUNNER_MANUALLY_TRAP_SIG=1 \
    ACTIONS_RUNNER_PRINT_LOG_TO_STDOUT=1 \
    ImageOS=ubuntu24
USER runner
WORKDIR /home/runner
EOF
cat >"$CTX/Containerfile.broken" <<'EOF'
ARG BASE
FROM $BASE
COPY --chown=1001:1001 broken-run.sh /home/runner/run.sh
EOF

# --- build ---------------------------------------------------------------------------------
old_main=$($PODMAN image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
old_broken=$($PODMAN image inspect --format '{{.Id}}' "$BROKEN_TAG" 2>/dev/null || true)

say "building $TAG (context $CTX)"
$PODMAN build --runtime runc --quiet --squash --pull=never \
    --label "$HASH_LABEL=$HASH" -f "$CTX/Containerfile" -t "$TAG" "$CTX" >/dev/null
say "building $BROKEN_TAG"
$PODMAN build --runtime runc --quiet --layers=false --pull=never \
    --build-arg "BASE=$TAG" -f "$CTX/Containerfile.broken" -t "$BROKEN_TAG" "$CTX" >/dev/null

# Drop the replaced images (fails harmlessly while a container still uses one).
for id in "$old_broken" "$old_main"; do
    if [ -n "$id" ] && [ "$id" != "$($PODMAN image inspect --format '{{.Id}}' "$TAG")" ] &&
        [ "$id" != "$($PODMAN image inspect --format '{{.Id}}' "$BROKEN_TAG")" ]; then
        $PODMAN rmi "$id" >/dev/null 2>&1 || true
    fi
done
say "built $TAG and $BROKEN_TAG"
