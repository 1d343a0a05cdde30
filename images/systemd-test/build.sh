#!/bin/sh
# Builds localhost/podrunner-systemd-test:latest, a minimal Debian bookworm with systemd as
# PID 1, for the test that runs podrunner's unit under a real systemd
# (crates/podrunner/tests/systemd_container.rs). No registry is needed: the root file system
# is made with debootstrap from deb.debian.org and imported with `podman import`.
#
# Usage: images/systemd-test/build.sh [--tag IMAGE] [--force]
# Env:   PODMAN (default podman; may carry global flags), DEBIAN_MIRROR (default
#        http://deb.debian.org/debian), SYSTEMD_TEST_BUILD_DIR (default a temporary folder).
# Idempotent: when the image exists it only checks and exits. Needs root (debootstrap);
# installs debootstrap with apt-get when it is missing.
set -eu

PODMAN=${PODMAN:-podman}
TAG=localhost/podrunner-systemd-test:latest
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
FORCE=0

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
        --tag=*) TAG=${1#--tag=}; shift ;;
        --force) FORCE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

say() { echo "systemd-test: $*"; }
die() { echo "systemd-test: error: $*" >&2; exit 1; }

# shellcheck disable=SC2086 # PODMAN may carry global flags
if [ "$FORCE" = 0 ] && $PODMAN image exists "$TAG"; then
    say "$TAG exists"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root; run this as root"
if ! command -v debootstrap >/dev/null 2>&1; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null 2>&1 || {
        apt-get update >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null
    }
fi

# A lock so that two concurrent callers (parallel tests, two checkouts) build it only once.
LOCK=/run/lock/podrunner-systemd-test.build.lock
exec 9>"$LOCK"
flock 9
# shellcheck disable=SC2086
if [ "$FORCE" = 0 ] && $PODMAN image exists "$TAG"; then
    say "$TAG exists (built by another caller)"
    exit 0
fi

if [ -n "${SYSTEMD_TEST_BUILD_DIR:-}" ]; then
    WORK=$SYSTEMD_TEST_BUILD_DIR
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d /var/tmp/podrunner-systemd-test.XXXXXX)
fi
ROOTFS=$WORK/rootfs
DONE=0
# The root file system always goes; a temporary folder goes too unless a failure left its log.
cleanup() {
    rm -rf "$ROOTFS"
    if [ -z "${SYSTEMD_TEST_BUILD_DIR:-}" ] && [ "$DONE" = 1 ]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$ROOTFS"

start=$(date +%s)
say "debootstrap $SUITE from $MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libpam-systemd,procps,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    die "debootstrap failed (full log: $WORK/debootstrap.log)"
}

# procps: /bin/kill, which the unit's ExecReload= runs (any Debian above minbase has it).
# libpam-systemd: without pam_systemd the user manager (user@UID.service, which a system unit
# with User= orders itself after) fails for want of XDG_RUNTIME_DIR, and systemd in this
# container cannot tell when its cgroup is empty (podman masks cgroup v1's release_agent), so
# the failed unit hangs in stop-sigkill for 90 s and holds back the start of podrunner.service.
#
# Units that fail or make no sense in a container; masked so that the system reaches
# `running` (not `degraded`) and boots fast.
for u in \
    systemd-remount-fs.service systemd-udevd.service systemd-udev-trigger.service \
    systemd-udev-settle.service systemd-modules-load.service systemd-sysctl.service \
    systemd-firstboot.service systemd-hwdb-update.service systemd-random-seed.service \
    systemd-timesyncd.service systemd-networkd.service systemd-resolved.service \
    getty.target console-getty.service getty@tty1.service serial-getty@.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    fstrim.timer dpkg-db-backup.timer \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-fs-fuse-connections.mount dev-hugepages.mount dev-mqueue.mount; do
    ln -sf /dev/null "$ROOTFS/etc/systemd/system/$u"
done
# A machine id is made at first boot; an empty file lets systemd write a fresh one.
: >"$ROOTFS/etc/machine-id"
echo podrunner-systemd-test >"$ROOTFS/etc/hostname"
# Keep the image small: package caches and docs are not needed.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*

say "importing $TAG"
# shellcheck disable=SC2086
tar --numeric-owner -C "$ROOTFS" -c . | $PODMAN import --quiet \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    --message "podrunner systemd test image ($SUITE, debootstrap minbase)" - "$TAG" >/dev/null
DONE=1
say "built $TAG in $(($(date +%s) - start)) s"
