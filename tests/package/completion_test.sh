#!/bin/bash
# hvctl's generated bash completion (`hvctl completion bash`) completes what the CLI defines:
#   completion_test.sh HVCTL
set -euo pipefail
hvctl=${1:?usage: completion_test.sh HVCTL}
script=$(mktemp /tmp/hvctl-completion-XXXXXX)
trap 'rm -f "$script"' EXIT
env -u HV_SOCKET "$hvctl" completion bash >"$script"
bash -n "$script"

complete_words() {  # complete_words WORD... -> the completions of the last word, sorted
    bash -c 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _hvctl
             printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' "$script" "$@"
}
expect() {  # expect "WANT" WORD...
    local want=$1
    shift
    local got
    got=$(complete_words "$@")
    if [ "$got" != "$want" ]; then
        echo "FAIL: '$*<TAB>' gave '$got', expected '$want'" >&2
        exit 1
    fi
    echo "ok: '$*<TAB>' -> $got"
}
expect "create " hvctl vm cr
expect "pool " hvctl storage po
# The -o choices come from its CLI::IsMember check (json, table, yaml, ... as the CLI defines).
for words in "hvctl vm list -o" "hvctl -o"; do
    got=$(complete_words $words '')
    [[ " $got " == *" json "* && " $got " == *" table "* ]] || { echo "FAIL: '$words <TAB>' gave '$got'" >&2; exit 1; }
    echo "ok: '$words <TAB>' -> $got"
done
expect "--output=json " hvctl vm list --output=j
# Global flags are accepted after the command (fallthrough), and options of the command itself.
expect "--no-headers " hvctl vm list --no-h
expect "--type " hvctl storage pool add fast --ty
# The value of an option is skipped when finding the command: `--socket /x vm` is still `vm`.
expect "start stop " hvctl --socket /tmp/x.sock vm st
# Hidden commands are not offered.
[[ " $(complete_words hvctl '') " != *" completion "* ]] || { echo "FAIL: hidden 'completion' offered" >&2; exit 1; }
# Every noun of `hvctl --help` is offered.
for noun in $("$hvctl" --help | sed -n '/^Subcommands:/,$p' | awk 'NR > 1 && NF {print $1}'); do
    [[ " $(complete_words hvctl '') " == *" $noun "* ]] || { echo "FAIL: noun $noun not offered" >&2; exit 1; }
done
echo PASS
