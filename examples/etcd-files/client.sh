#!/usr/bin/env bash
# A faultline client program (protocol: docs/file-db.md) for etcd, in bash
# with etcdctl: the register workload's read, write and cas on integer keys
# and values. One operation per line on stdin, one answer per line on
# stdout. Usage: client.sh NODE ENDPOINT
set -u
node=$1 endpoint=$2
# etcdctl refuses ETCDCTL_ENDPOINTS together with --endpoints.
unset ETCDCTL_ENDPOINTS
export ETCDCTL_API=3
prefix=/faultline-files/register
errf=$(mktemp)
trap 'rm -f "$errf"' EXIT

ctl() { etcdctl --endpoints="$endpoint" --dial-timeout=1s --command-timeout=3s "$@" 2>"$errf"; }

# The last error line etcdctl printed, as a JSON string.
err() {
  local s
  s=$(tail -n 1 "$errf")
  [ -n "$s" ] || s="etcdctl failed on $node"
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}

while IFS= read -r line; do
  if [[ $line =~ \"f\":\"([a-z-]+)\" ]]; then f=${BASH_REMATCH[1]}; else f=; fi
  key=null
  [[ $line =~ \"key\":(-?[0-9]+) ]] && key=${BASH_REMATCH[1]}
  value=null
  [[ $line =~ \"value\":(-?[0-9]+|\[-?[0-9]+,-?[0-9]+\]) ]] && value=${BASH_REMATCH[1]}
  k="$prefix/$key"
  case $f in
    read)
      if out=$(ctl get "$k" --print-value-only); then
        if [ -z "$out" ]; then
          echo '{"type":"ok","value":null}'
        elif [[ $out =~ ^-?[0-9]+$ ]]; then
          echo "{\"type\":\"ok\",\"value\":$out}"
        else
          echo '{"type":"fail","error":"not an integer in etcd"}'
        fi
      else
        # A read changes nothing: a read that went wrong is a failed one.
        echo "{\"type\":\"fail\",\"error\":$(err)}"
      fi ;;
    write)
      if ctl put "$k" "$value" >/dev/null; then
        echo '{"type":"ok"}'
      else
        # It may have been applied: unknown.
        echo "{\"type\":\"info\",\"error\":$(err)}"
      fi ;;
    cas)
      if ! [[ $value =~ ^\[(-?[0-9]+),(-?[0-9]+)\]$ ]]; then
        echo '{"type":"fail","error":"cas takes [old, new]"}'
        continue
      fi
      old=${BASH_REMATCH[1]} new=${BASH_REMATCH[2]}
      # etcdctl txn: compares, a blank line, puts on success, a blank
      # line, puts on failure, a blank line. It exits 0 whether the compare held or not.
      if out=$(printf 'value("%s") = "%s"\n\nput %s %s\n\n\n' "$k" "$old" "$k" "$new" | ctl txn); then
        case $out in
          SUCCESS*) echo '{"type":"ok"}' ;;
          FAILURE*) echo '{"type":"fail","error":"compare failed"}' ;;
          *) echo "{\"type\":\"info\",\"error\":\"unexpected txn output\"}" ;;
        esac
      else
        echo "{\"type\":\"info\",\"error\":$(err)}"
      fi ;;
    *)
      echo "{\"type\":\"fail\",\"error\":\"client.sh does not do f=$f\"}" ;;
  esac
done
