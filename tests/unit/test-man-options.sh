#!/bin/bash
# Every long option a program's --help prints is documented in its man
# page, and every verb droverctl dispatches is in droverctl's --help and
# its man page. Usage: test-man-options.sh BUILD_DIR SOURCE_DIR
set -u
build=$1 src=$2
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
bad() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }

# roff writes a dash as \- ; fold that back before searching.
man_text() { sed 's/\\-/-/g' "$src/man/$1"; }

check_options() { # PROGRAM-PATH MAN-PAGE [HELP ARGS...]
  local prog=$1 page=$2; shift 2
  local text opts o
  text=$(man_text "$page")
  opts=$("$prog" "$@" --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
  [ -n "$opts" ] || { bad "$prog $* --help printed no options"; return; }
  for o in $opts; do
    [ "$o" = --help ] && continue
    if grep -q -- "$o\b" <<<"$text"; then
      ok "$page documents $* $o"
    else
      bad "$page does not document $* $o"
    fi
  done
}

check_options "$build/scheduler/drover-scheduler" drover-scheduler.8
check_options "$build/agent/drover-agent" drover-agent.8

ctl="$build/cli/droverctl"
help=$("$ctl" --help)
page=$(man_text droverctl.1)
# The verbs droverctl dispatches: its table in droverctl.c.
verbs=$(sed -n '/^  static const .*verbs\[\]/,/^  };/p' "$src/cli/droverctl.c" \
  | grep -o '{ "[a-z-]*"' | grep -o '[a-z-]*' | grep -v '^$')
[ -n "$verbs" ] || bad "found no verbs in cli/droverctl.c"
for v in $verbs; do
  if grep -q -- "^  $v\b" <<<"$help"; then ok "droverctl --help lists $v"
  else bad "droverctl --help does not list $v"; fi
  if grep -q -- "^\.B $v\b" <<<"$page"; then ok "droverctl.1 has $v"
  else bad "droverctl.1 has no entry for $v"; fi
done
# Each verb's options (its own --help) are in the man page.
for v in hosts jobs migrate events dashboard-token; do
  check_options "$ctl" droverctl.1 "$v"
done
for vs in "host drain" "vm create" "vm stop" "vm clone" "vm label" "vm set" \
          "snapshot create" "snapshot revert" "backup create" "backup restore" \
          "backup prune" "repo gc" "schedule create" "schedule drill" \
          "network create" "image import" "balance apply"; do
  # shellcheck disable=SC2086
  check_options "$ctl" droverctl.1 $vs
done
echo "1..$n"
[ "$failed" = 0 ]
