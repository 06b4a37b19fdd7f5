#!/usr/bin/env bash
# usage: conformance/run.sh [OUTDIR]
#
# Runs libiscsi's iscsi-test-cu (through ../shared/tools/conformance.sh, or $CONFORMANCE_SH) against
# the vtgt iSCSI target started as a process on ephemeral loopback ports. Builds nothing: run
# `npm run build` first (it uses dist/iscsi/dev-target.js: the same src/iscsi + SCSI core the service
# runs). Three passes over one target with two portals:
#   lun0  thin-provisioned sparse file (128 MiB), with the second portal as the MultipathIO path
#   lun1  removable-media memory LUN (16 MiB)
#   lun2  read-only memory LUN (16 MiB)
# Exits non-zero if any test fails, or is skipped without being listed in conformance/SKIPS.md
# under that LUN's heading.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/vtgt-conformance.XXXXXX")}
CONF=${CONFORMANCE_SH:-$root/../shared/tools/conformance.sh}
DEV=$root/dist/iscsi/dev-target.js
IQN=iqn.2026-11.org.vtgt:conformance
[ -f "$DEV" ] || { echo "run.sh: $DEV missing; run 'npm run build' first" >&2; exit 2; }
[ -x "$CONF" ] || { echo "run.sh: conformance script $CONF not found (set CONFORMANCE_SH)" >&2; exit 2; }
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/vtgt-conf-lun.XXXXXX")

node "$DEV" --target "$IQN" --portals 2 --nop-interval 0 \
  --lun "0=file:$work/lun0.img:128M" --lun "1=memory:16M:removable" --lun "2=memory:16M:ro" \
  >"$OUT/target.json" 2>"$OUT/target.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$OUT/target.json" ] && break; sleep 0.1; done
read -r P1 P2 < <(python3 -c 'import json,sys; print(*json.load(open(sys.argv[1]))["ports"])' "$OUT/target.json") || {
  echo "run.sh: target did not start:" >&2; cat "$OUT/target.log" >&2; exit 2; }
base="iscsi://127.0.0.1:$P1/$IQN"
"$CONF" "$base/0" "$OUT/lun0" "iscsi://127.0.0.1:$P2/$IQN/0" | tail -1
CONF_TESTS=ALL.PreventAllow,ALL.StartStopUnit "$CONF" "$base/1" "$OUT/lun1" | tail -1
CONF_TESTS=ALL.ReadOnly "$CONF" "$base/2" "$OUT/lun2" | tail -1

python3 - "$here/SKIPS.md" "$OUT" <<'PY'
import json, re, sys, os
skips_md, out = sys.argv[1], sys.argv[2]
allowed, lun = {}, None
for line in open(skips_md):
    m = re.match(r'^## (lun\d)\b', line)
    if m:
        lun = m.group(1)
        continue
    m = re.match(r'^- `([^`]+)`', line)
    if m and lun:
        allowed.setdefault(lun, set()).add(m.group(1))
bad = 0
for lun in ('lun0', 'lun1', 'lun2'):
    path = os.path.join(out, lun, 'summary.json')
    try:
        s = json.load(open(path))
    except Exception as e:
        print(f'{lun}: no summary ({e})'); bad += 1; continue
    t = s['totals']
    print(f"{lun}: {t['pass']} passed, {t['fail']} failed, {t['skip']} skipped of {t['total']}")
    for n in s['failed']:
        print(f'{lun}: FAILED {n}'); bad += 1
    for n in s['skipped']:
        if n not in allowed.get(lun, set()):
            print(f"{lun}: SKIPPED and not in SKIPS.md: {n} ({s['results'][n].get('skip_reason')})"); bad += 1
    if t['total'] == 0:
        bad += 1
print('conformance/run.sh: OK' if bad == 0 else f'conformance/run.sh: {bad} problem(s); results in {out}')
sys.exit(1 if bad else 0)
PY
