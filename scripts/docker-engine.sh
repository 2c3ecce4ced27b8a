#!/usr/bin/env bash
# A private Docker engine for testfleet's tests and CI, on machines where none runs and no registry is
# reachable.
#
#   eval "$(scripts/docker-engine.sh start)"   # idempotent; prints `export DOCKER_HOST=...`
#   scripts/docker-engine.sh start --fixtures  # also builds the images of tests/fixtures/compose-*/
#   scripts/docker-engine.sh env               # prints `export DOCKER_HOST=...`
#   scripts/docker-engine.sh status            # exit 0 when the engine answers
#   scripts/docker-engine.sh fixtures          # builds the fixture images (engine must be running)
#   scripts/docker-engine.sh stop
#
# `start` installs docker.io, docker-compose and debootstrap when missing, starts dockerd in the background
# with its own data root, exec root, pidfile and socket (so it never touches a system engine's state),
# waits until it answers, checks that a compose-style network with service-name DNS works, and builds the
# base image debian:bookworm-slim from Debian's mirror with debootstrap once (nothing can be pulled here;
# the image stays in the data root, so later starts skip it). Every failure exits non-zero with the reason
# and the engine's log tail: CI must fail, not skip, when it has no engine.
#
# Progress goes to stderr; stdout carries only the export line. Settings (environment):
#   TESTFLEET_DOCKER_RUN    sockets, pidfile, exec root, log   (default /run/testfleet-docker)
#   TESTFLEET_DOCKER_DATA   images, containers, volumes        (default /var/lib/testfleet-docker)
#   TESTFLEET_DOCKER_POOL   address pool of compose networks   (default 172.28.0.0/14, 1024 /24 networks)
#   TESTFLEET_DOCKER_BRIDGE the default bridge's name          (default docker0, made by dockerd)
#   TESTFLEET_DOCKER_SEED   DOCKER_HOST of an engine to copy the base image from (docker save | docker load)
#                           instead of building it with debootstrap
#   TESTFLEET_DEBIAN_MIRROR mirror for debootstrap             (default http://deb.debian.org/debian)
#   TESTFLEET_DOCKERD_FLAGS extra dockerd flags, e.g. "--storage-driver=vfs" on a filesystem without overlay
#   TESTFLEET_DOCKERD_PRIVATE_TMP=1  start dockerd in a mount namespace of its own with an empty tmpfs on /tmp:
#                           an engine that cannot see the client's files there, as one on another machine
#
# A second engine on the same machine (testfleet's tests of several Docker hosts) needs its own of each
# of the first four, and can take its base image from the first:
#
#   TESTFLEET_DOCKER_RUN=/run/testfleet-docker2 TESTFLEET_DOCKER_DATA=/var/lib/testfleet-docker2 \
#   TESTFLEET_DOCKER_POOL=172.24.0.0/16 TESTFLEET_DOCKER_BRIDGE=tfdocker2 \
#   TESTFLEET_DOCKER_SEED=unix:///run/testfleet-docker/docker.sock scripts/docker-engine.sh start
#
# Such a guest engine (TESTFLEET_DOCKER_BRIDGE set) gets its own bridge, made here on the first /24 of its
# pool, so that it stays off docker0, which belongs to the first engine. It also runs with --iptables=false:
# a dockerd empties Docker's iptables chains (DOCKER, DOCKER-ISOLATION-*) when it starts, which would cut
# the first engine's published ports. Instead this script gives the guest's pool three rules of its own
# (forward from and to the pool, masquerade out of it), tagged with its run directory. Ports published on
# a guest engine are not forwarded (testfleet publishes none). `stop` removes the rules and the bridge.
set -euo pipefail

RUN_DIR=${TESTFLEET_DOCKER_RUN:-/run/testfleet-docker}
DATA_ROOT=${TESTFLEET_DOCKER_DATA:-/var/lib/testfleet-docker}
POOL=${TESTFLEET_DOCKER_POOL:-172.28.0.0/14}
BRIDGE=${TESTFLEET_DOCKER_BRIDGE:-}
SEED=${TESTFLEET_DOCKER_SEED:-}
MIRROR=${TESTFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SOCKET=$RUN_DIR/docker.sock
PIDFILE=$RUN_DIR/dockerd.pid
LOG=$RUN_DIR/dockerd.log
BASE_IMAGE=debian:bookworm-slim
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export DOCKER_HOST=unix://$SOCKET

ROOTFS_TMP=
trap '[[ -z $ROOTFS_TMP ]] || rm -rf "$ROOTFS_TMP" "$ROOTFS_TMP.log"' EXIT

say() { printf 'docker-engine: %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}
log_tail() {
  if [[ -f $LOG ]]; then
    say "last lines of $LOG:"
    tail -n 25 "$LOG" >&2
  fi
}

engine_answers() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

dockerd_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # A recycled pid belongs to someone else: it must be a dockerd. A killed one not yet reaped by its
  # new parent still answers kill -0: it must not be a zombie either.
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  echo "$pid"
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v iptables >/dev/null || missing+=(iptables)
  [[ -z $BRIDGE ]] || command -v ip >/dev/null || missing+=(iproute2)
  ((${#missing[@]} == 0)) && return 0
  say "installing ${missing[*]}"
  # The packages' maintainer scripts must not start a system dockerd beside ours (it would take the same
  # bridge and iptables chains): policy-rc.d says no to every service start while we install.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  local status=0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >&2; } || status=$?
  ((own_policy)) && rm -f "$policy"
  ((status == 0)) || die "cannot install ${missing[*]} with apt-get"
}

# After a dockerd that was killed (SIGKILL, a session that ended): its containerd and container shims may
# live on, and containerd's runtime state under the exec root is stale; a new containerd then hangs
# restoring it ("timeout waiting for containerd to start"). Only processes started for this exec root
# (their command line names it) are ended; the data root, with images and volumes, stays.
clear_stale_state() {
  local pids=() proc pid cmdline
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    [[ $pid == "$$" ]] && continue
    cmdline=$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline") || continue
    [[ $cmdline == *"$RUN_DIR/exec/"* ]] && pids+=("$pid")
  done
  if ((${#pids[@]} > 0)); then
    say "ending ${#pids[@]} leftover process(es) of an earlier engine: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 1
  fi
  # Mounts of the old containers' root filesystems would keep the state busy.
  grep -F " $RUN_DIR/exec/" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$RUN_DIR/exec" "$PIDFILE" "$SOCKET"
}

# The first address of the pool, as a /24: 172.24.0.0/16 -> 172.24.0.1/24.
bridge_address() {
  local base=${POOL%/*} a b c
  IFS=. read -r a b c _ <<<"$base"
  [[ $a =~ ^[0-9]+$ && $b =~ ^[0-9]+$ && $c =~ ^[0-9]+$ ]] || die "TESTFLEET_DOCKER_POOL '$POOL' is not an IPv4 CIDR"
  echo "$a.$b.$c.1/24"
}

make_bridge() {
  local address
  address=$(bridge_address)
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    say "creating bridge $BRIDGE ($address)"
    ip link add name "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE"
  fi
  ip -4 addr show dev "$BRIDGE" | grep -qF " ${address} " ||
    ip addr replace "$address" dev "$BRIDGE" || die "cannot give $BRIDGE the address $address"
  ip link set "$BRIDGE" up || die "cannot bring $BRIDGE up"
}

# The rules Docker would have written for the guest's networks: iptables with OP (-C check, -I insert, -D
# delete) for each. Fails when any of the three fails.
guest_iptables() {
  local op=$1 status=0 tag=(-m comment --comment "testfleet-docker $RUN_DIR")
  iptables -w "$op" FORWARD -s "$POOL" "${tag[@]}" -j ACCEPT 2>/dev/null || status=1
  iptables -w "$op" FORWARD -d "$POOL" "${tag[@]}" -j ACCEPT 2>/dev/null || status=1
  iptables -w -t nat "$op" POSTROUTING -s "$POOL" ! -d "$POOL" "${tag[@]}" -j MASQUERADE 2>/dev/null || status=1
  return $status
}

add_guest_rules() {
  sysctl -q -w net.ipv4.ip_forward=1 >/dev/null || die "cannot enable IPv4 forwarding"
  guest_iptables -C && return 0
  guest_iptables -D || true
  guest_iptables -I || die "cannot add the iptables rules of $POOL"
}

remove_guest_rules() {
  local _
  for _ in 1 2 3; do guest_iptables -D || break; done
}

remove_bridge() {
  ip link show "$BRIDGE" >/dev/null 2>&1 || return 0
  if ip link delete "$BRIDGE" type bridge 2>/dev/null; then
    say "removed bridge $BRIDGE"
  else
    say "bridge $BRIDGE is still in use"
  fi
}

start_dockerd() {
  local pid
  if engine_answers; then
    say "engine already answers at $DOCKER_HOST"
    return 0
  elif pid=$(dockerd_pid); then
    say "dockerd (pid $pid) is running but does not answer yet"
  else
    clear_stale_state
    mkdir -p "$RUN_DIR" "$DATA_ROOT"
    local bridge_flags=()
    if [[ -n $BRIDGE && $BRIDGE != docker0 ]]; then
      make_bridge
      add_guest_rules
      # A dockerd with --default-address-pool that finds its default network in its network store deletes
      # the interface docker0 at start ("clear stale bridge network"), whatever --bridge says: that is the
      # first engine's bridge. Without a store there is nothing stale; images and volumes stay.
      rm -f "$DATA_ROOT/network/files/local-kv.db"
      bridge_flags=(--bridge "$BRIDGE" --iptables=false)
    fi
    say "starting dockerd (data root $DATA_ROOT, socket $SOCKET, log $LOG)"
    # setsid: its own session, so that the shell or CI step that started it can end without taking it
    # along; stdin from /dev/null so that it holds no terminal.
    # shellcheck disable=SC2086
    local private_tmp=()
    if [[ ${TESTFLEET_DOCKERD_PRIVATE_TMP:-} == 1 ]]; then
      # unshare and sh exec in turn, so $! is still dockerd's pid.
      private_tmp=(unshare --mount --propagation private -- sh -c \
        'mount -t tmpfs testfleet-private-tmp /tmp && exec "$@"' sh)
    fi
    setsid "${private_tmp[@]}" dockerd \
      --data-root "$DATA_ROOT" \
      --exec-root "$RUN_DIR/exec" \
      --pidfile "$PIDFILE" \
      --host "unix://$SOCKET" \
      --default-address-pool "base=$POOL,size=24" \
      "${bridge_flags[@]}" \
      --log-level warn \
      ${TESTFLEET_DOCKERD_FLAGS:-} \
      </dev/null >>"$LOG" 2>&1 &
    pid=$!
  fi
  local waited=0
  until engine_answers; do
    if ((waited >= 60)); then
      log_tail
      die "dockerd did not answer at $DOCKER_HOST within 60 s"
    fi
    if { ! kill -0 "$pid" 2>/dev/null || [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]]; } &&
      ! dockerd_pid >/dev/null; then
      log_tail
      die "dockerd exited during start-up"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "engine $(docker info --format '{{.ServerVersion}}') answers at $DOCKER_HOST"
}

# debootstrap's minbase, slimmed the way Debian's official slim image is: no documentation, manual pages or
# translations now or in later installs, and apt keeps no package files.
build_base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE present"
    return 0
  fi
  if [[ -n $SEED ]]; then
    if DOCKER_HOST=$SEED docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
      say "copying $BASE_IMAGE from the engine at $SEED"
      # pipefail: a failed save fails the copy, not only a failed load.
      if DOCKER_HOST=$SEED docker save "$BASE_IMAGE" | docker load >/dev/null; then
        say "$BASE_IMAGE copied"
        return 0
      fi
      say "copying $BASE_IMAGE from $SEED failed: building it instead"
    else
      say "the engine at $SEED has no $BASE_IMAGE: building it instead"
    fi
  fi
  local rootfs
  rootfs=$(mktemp -d /var/tmp/testfleet-rootfs.XXXXXX)
  ROOTFS_TMP=$rootfs
  say "building $BASE_IMAGE with debootstrap from $MIRROR"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1; then
    tail -n 25 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    die "debootstrap failed"
  fi
  rm -f "$rootfs.log"
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::Install-Recommends "false";
EOF
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" --numeric-owner -c . |
    docker import --change 'CMD ["bash"]' --change 'LABEL io.testfleet.base=debootstrap' - "$BASE_IMAGE" >/dev/null ||
    die "docker import of $BASE_IMAGE failed"
  rm -rf "$rootfs"
  ROOTFS_TMP=
  say "$BASE_IMAGE built ($(docker image inspect --format '{{.Size}}' "$BASE_IMAGE" | awk '{printf "%d MB", $1/1e6}'))"
}

# What the compose backend relies on: containers start, a user-defined network gives service-name DNS, and
# a container reaches Debian's mirror (image builds install packages).
self_check() {
  local net=testfleet-selfcheck-$$ peer=testfleet-selfcheck-$$-peer status=0 output
  docker network create --label io.testfleet.selfcheck=1 "$net" >/dev/null || die "cannot create a network"
  if ! docker run -d --network "$net" --network-alias peer --name "$peer" "$BASE_IMAGE" sleep 60 >/dev/null; then
    docker network rm "$net" >/dev/null 2>&1
    log_tail
    die "cannot start a container"
  fi
  output=$(docker run --rm --network "$net" "$BASE_IMAGE" sh -c \
    'getent hosts peer >/dev/null || { echo "no DNS for a peer on the network"; exit 1; }
     apt-get update -q -o Acquire::Retries=2 >/dev/null 2>&1 || { echo "no access to the Debian mirror"; exit 1; }' 2>&1) ||
    status=$?
  docker rm -f "$peer" >/dev/null 2>&1 || true
  docker network rm "$net" >/dev/null 2>&1 || true
  ((status == 0)) || die "self-check failed: $output"
  say "self-check passed: containers, network DNS, package mirror"
}

build_fixtures() {
  local file dir compose
  if docker compose version >/dev/null 2>&1; then compose=(docker compose); else compose=(docker-compose); fi
  for file in "$REPO_ROOT"/tests/fixtures/compose-*/docker-compose.yml; do
    [[ -f $file ]] || continue
    dir=$(dirname "$file")
    say "building the images of ${dir#"$REPO_ROOT"/}"
    local start=$SECONDS
    "${compose[@]}" -p testfleet-prebuild -f "$file" build >&2 || die "building the images of $dir failed"
    say "built ${dir#"$REPO_ROOT"/} in $((SECONDS - start)) s"
  done
}

stop_dockerd() {
  local pid
  if ! pid=$(dockerd_pid); then
    say "not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || {
      say "stopped"
      return 0
    }
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  say "killed after 30 s"
}

main() {
  local command=${1:-}
  shift || true
  case $command in
    start)
      [[ $(id -u) == 0 ]] || die "start needs root (dockerd, iptables, apt-get)"
      local fixtures=0
      for arg in "$@"; do
        case $arg in
          --fixtures) fixtures=1 ;;
          *) die "unknown option $arg" ;;
        esac
      done
      local begin=$SECONDS
      install_packages
      start_dockerd
      build_base_image
      self_check
      ((fixtures)) && build_fixtures
      say "ready in $((SECONDS - begin)) s"
      echo "export DOCKER_HOST=$DOCKER_HOST"
      ;;
    stop)
      stop_dockerd
      if [[ -n $BRIDGE && $BRIDGE != docker0 ]]; then
        remove_guest_rules
        remove_bridge
      fi
      ;;
    env) echo "export DOCKER_HOST=$DOCKER_HOST" ;;
    status)
      if engine_answers; then
        say "engine answers at $DOCKER_HOST"
      else
        say "no engine at $DOCKER_HOST"
        exit 1
      fi
      ;;
    fixtures)
      engine_answers || die "no engine at $DOCKER_HOST: run $0 start first"
      build_fixtures
      ;;
    *)
      sed -n '2,10p' "$0" >&2
      exit 2
      ;;
  esac
}

main "$@"
