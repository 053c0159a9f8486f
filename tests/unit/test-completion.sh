#!/bin/bash
# contrib/bash-completion/droverctl: verbs, subcommands and options
# complete without a scheduler (names would need one: not tested here).
set -u
. "$(dirname "$0")/../../contrib/bash-completion/droverctl"

n=0 failed=0
check() {
  # check "WORDS..." EXPECTED: completing the last word offers exactly EXPECTED
  local want="$2"
  read -r -a COMP_WORDS <<<"$1"
  [[ "$1" == *" " ]] && COMP_WORDS+=("")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _droverctl
  local got="${COMPREPLY[*]}"
  n=$((n + 1))
  if [ "$got" = "$want" ]; then
    echo "ok $n - '$1' -> $want"
  else
    failed=$((failed + 1))
    echo "not ok $n - '$1': want '$want', got '$got'"
  fi
}

check "droverctl " "hosts host vm snapshot backup repo schedule dr network image balance jobs job migrate events dashboard-token help"
check "droverctl schedule " "create list show pause resume delete run-now drill"
check "droverctl network " "create list show delete"
check "droverctl network create lan --bridge br0 --v" "--vlan"
check "droverctl network create lan --m" "--mtu"
check "droverctl image " "import list show delete"
check "droverctl image import img disk.qcow2 --ho" "--host"
check "droverctl vm create v --cl" "--cloud-init"
check "droverctl network delete lan --" "--help"
check "droverctl schedule create s1 --keep-d" "--keep-daily"
check "droverctl balance " "plan apply status mode"
check "droverctl balance mode " "off recommend auto"
check "droverctl balance apply --w" "--wait"
check "droverctl host " "drain undrain"
check "droverctl host drain h1 --s" "--stop-unmovable"
check "droverctl --ve" "--version"
check "droverctl --insecure j" "jobs job"
check "droverctl job " "watch cancel"
check "droverctl job c" "cancel"
check "droverctl vm st" "start stop"
check "droverctl vm stop web-1 --f" "--force"
check "droverctl migrate web-1 --st" "--stall-rounds --strict"
check "droverctl migrate web-1 --compress " "auto on off"
check "droverctl migrate web-1 --po" "--postcopy"
check "droverctl migrate web-1 --postcopy " "auto never now"
check "droverctl migrate web-1 --no" "--no-throttle"
check "droverctl vm s" "show start stop set"
check "droverctl vm set web-1 --m" "--migration-postcopy"
check "droverctl vm set web-1 --migration-postcopy " "auto never"
check "droverctl vm create x --accel " "kvm tcg"
check "droverctl --scheduler 127.0.0.1:7400 hosts --j" "--json"
check "droverctl snapshot " "create list show revert delete"
check "droverctl repo " "add list status gc"
check "droverctl repo gc r1 --w" "--wait"
check "droverctl backup v" "verify"
check "droverctl backup verify --a" "--all"
check "droverctl backup prune web-1 --keep-d" "--keep-daily"
check "droverctl backup prune web-1 --keep-last 2 --d" "--dry-run"
check "droverctl snapshot r" "revert"
check "droverctl snapshot create web s1 --m" "--memory"
check "droverctl snapshot revert web s1 --p" "--paused"
check "droverctl snapshot delete web s1 --d" "--detach"
check "droverctl vm cl" "clone"
check "droverctl vm t" "template"
check "droverctl vm n" "nic"
check "droverctl vm nic " "add remove"
check "droverctl vm nic add web lan --m" "--mac"
check "droverctl vm create x --ne" "--net"
check "droverctl vm clone web web2 --f" "--full --from-snapshot"
check "droverctl vm clone web web2 --l" "--linked"
check "droverctl backup " "create list show restore verify prune"
check "droverctl backup restore vm1-20261204T211308Z-cf19a4 --i" "--in-place"
check "droverctl backup create web --f" "--full"
check "droverctl backup restore x --as new --s" "--start"
echo "1..$n"
[ "$failed" = 0 ]
