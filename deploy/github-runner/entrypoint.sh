#!/bin/bash
# Registers this container as a self-hosted GitHub Actions runner and listens for jobs.
#
#   TOKEN               registration token (repository or organisation: Settings > Actions > Runners > New
#                       self-hosted runner), or TOKEN_FILE, a file holding it (a compose/Swarm secret)
#   RUNNER_URL          https://github.com/OWNER/REPO or https://github.com/ORG
#   RUNNER_NAME         default: the container's hostname
#   RUNNER_LABELS       default: testfleet,docker
#   RUNNER_WORKDIR      where jobs check out code, default /srv/github-runner/work; mount it at the same path
#                       on the host, so that bind mounts of the jobs' containers (testfleet's reports
#                       directory) name the same directory on the host's engine
#   RUNNER_EPHEMERAL    1: take one job, then deregister and exit
#   RUNNER_TARBALL      the runner's release tarball (actions-runner-linux-x64-*.tar.gz) in a mounted folder,
#                       default: the newest /opt/runner-dist/actions-runner-linux-*.tar.gz
#   RUNNER_TARBALL_URL  or where to download it from (https://github.com/actions/runner/releases)
#
# The token is never printed and never on a command line (visible to every process in `ps`): it is read
# into an unexported shell variable, removed from this script's environment at once, handed to config.sh
# through the runner's own ACTIONS_RUNNER_INPUT_TOKEN variable for that one process, masked in its output,
# and gone before the runner starts, so jobs cannot read it. TOKEN_FILE keeps it out of `docker inspect`
# too. Registration happens once: the runner's folder is a volume, and later starts reuse it.
set -euo pipefail

say() { printf 'github-runner: %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 64
}

token=
if [[ -n ${TOKEN_FILE:-} ]]; then
  [[ -r $TOKEN_FILE ]] || die "TOKEN_FILE names $TOKEN_FILE, which cannot be read"
  token=$(tr -d '[:space:]' <"$TOKEN_FILE")
elif [[ -n ${TOKEN:-} ]]; then
  token=$(tr -d '[:space:]' <<<"$TOKEN")
fi
unset TOKEN TOKEN_FILE
if [[ -z $token ]]; then
  die "TOKEN is not set. Give the runner a registration token of your repository or organisation
(Settings > Actions > Runners > New self-hosted runner), e.g. TOKEN=... docker-compose up -d,
or set TOKEN_FILE to a file that holds it. Refusing to start."
fi
[[ -n ${RUNNER_URL:-} ]] ||
  die "RUNNER_URL is not set: the repository or organisation to serve, e.g. https://github.com/OWNER/REPO"
[[ $RUNNER_URL =~ ^https?://[^[:space:]]+$ ]] || die "RUNNER_URL '$RUNNER_URL' is not an http(s) URL"

RUNNER_HOME=${RUNNER_HOME:-/home/runner/actions-runner}
RUNNER_WORKDIR=${RUNNER_WORKDIR:-/srv/github-runner/work}
RUNNER_NAME=${RUNNER_NAME:-$(hostname)}
RUNNER_LABELS=${RUNNER_LABELS:-testfleet,docker}
as_runner=(setpriv --reuid=runner --regid=runner --init-groups)

# Jobs reach the host's engine through its socket, whose group differs between machines: the runner user
# joins a group with the socket's group id.
socket=/var/run/docker.sock
if [[ -S $socket ]]; then
  gid=$(stat -c %g "$socket")
  group=$(getent group "$gid" | cut -d: -f1 || true)
  if [[ -z $group ]]; then
    group=docker-host
    groupadd --gid "$gid" "$group"
  fi
  usermod --append --groups "$group" runner
  say "Docker socket $socket (group $group, gid $gid) available to jobs"
else
  say "warning: no Docker socket at $socket: jobs that run containers (testfleet run --compose) will fail"
fi

mkdir -p "$RUNNER_WORKDIR"
chown runner:runner "$RUNNER_HOME" "$RUNNER_WORKDIR"

if [[ ! -x $RUNNER_HOME/config.sh ]]; then
  tarball=${RUNNER_TARBALL:-}
  if [[ -z $tarball && -d /opt/runner-dist ]]; then
    tarball=$(find /opt/runner-dist -maxdepth 1 -name 'actions-runner-linux-*.tar.gz' | sort -V | tail -n 1)
  fi
  if [[ -n $tarball ]]; then
    [[ -r $tarball ]] || die "RUNNER_TARBALL names $tarball, which cannot be read"
    say "installing the runner from $tarball"
    "${as_runner[@]}" tar -xzf "$tarball" -C "$RUNNER_HOME" || die "cannot unpack $tarball"
  elif [[ -n ${RUNNER_TARBALL_URL:-} ]]; then
    say "installing the runner from $RUNNER_TARBALL_URL"
    curl -fsSL --retry 3 "$RUNNER_TARBALL_URL" | "${as_runner[@]}" tar -xz -C "$RUNNER_HOME" ||
      die "cannot download and unpack $RUNNER_TARBALL_URL"
  else
    die "the GitHub Actions runner is not installed in $RUNNER_HOME: put its release tarball
(actions-runner-linux-x64-VERSION.tar.gz from https://github.com/actions/runner/releases) into the folder
mounted at /opt/runner-dist, or set RUNNER_TARBALL to a mounted file or RUNNER_TARBALL_URL to its address"
  fi
  [[ -x $RUNNER_HOME/config.sh ]] || die "the runner tarball has no config.sh"
fi

cd "$RUNNER_HOME"
if [[ ! -f .runner ]]; then
  flags=(--unattended --replace --url "$RUNNER_URL" --name "$RUNNER_NAME" --labels "$RUNNER_LABELS"
    --work "$RUNNER_WORKDIR")
  [[ ${RUNNER_EPHEMERAL:-0} == 1 ]] && flags+=(--ephemeral)
  say "registering runner '$RUNNER_NAME' with $RUNNER_URL (labels $RUNNER_LABELS)"
  # The prefix assignment puts the token into config.sh's environment only; its output is masked in case
  # it ever echoes what it was given.
  status=0
  while IFS= read -r line; do
    printf '%s\n' "${line//"$token"/***}"
  done < <(ACTIONS_RUNNER_INPUT_TOKEN=$token HOME=/home/runner "${as_runner[@]}" ./config.sh "${flags[@]}" 2>&1 ||
    echo "github-runner: config.sh failed with exit code $?")
  [[ -f .runner ]] || status=1
  ((status == 0)) || die "registration with $RUNNER_URL failed (an expired token? tokens are valid for one hour)"
else
  say "runner '$(jq -r '.agentName // "?"' .runner 2>/dev/null)' is registered already: not registering again"
fi
unset token

say "listening for jobs"
exec env HOME=/home/runner USER=runner "${as_runner[@]}" ./run.sh
