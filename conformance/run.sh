#!/usr/bin/env bash
# usage: conformance/run.sh [OUTDIR]
#
# Runs libiscsi's iscsi-test-cu (through ../shared/tools/conformance.sh, or $CONFORMANCE_SH) against
# the vtgt service (`node bin/vtgt.js serve`) started as a process with its own data directory and
# two portals on ephemeral loopback ports. Builds nothing: run `npm run build` first. One target:
#   lun0  thin-provisioned sparse file (128 MiB): the whole ALL family, with the second portal as the
#         MultipathIO path
#   lun1  removable-media memory LUN (16 MiB): the families that need removable media
#         (PreventAllow, StartStopUnit), which skip on lun0
#   lun2  read-only memory LUN (16 MiB): the family that needs write protection (ReadOnly), which
#         skips on lun0 (the rest of ALL writes with --dataloss and cannot run on a read-only LU)
# Exits non-zero if any test fails, or is skipped without being listed in conformance/SKIPS.md
# under that LUN's heading.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/vtgt-conformance.XXXXXX")}
CONF=${CONFORMANCE_SH:-$root/../shared/tools/conformance.sh}
IQN=iqn.2026-11.org.vtgt:conformance
[ -d "$root/dist/service" ] || { echo "run.sh: dist/ missing; run 'npm run build' first" >&2; exit 2; }
[ -x "$CONF" ] || { echo "run.sh: conformance script $CONF not found (set CONFORMANCE_SH)" >&2; exit 2; }
mkdir -p "$OUT"
data=$(mktemp -d "${TMPDIR:-/tmp}/vtgt-conf-data.XXXXXX")
cat >"$data/conformance.yaml" <<YAML
backstores:
  - { name: thin0, type: file, path: thin0.img, size: 128MiB }
  - { name: rem1, type: memory, size: 16MiB, removable: true }
  - { name: ro2, type: memory, size: 16MiB, readOnly: true }
targets:
  - name: $IQN
    luns:
      - { lun: 0, backstore: thin0 }
      - { lun: 1, backstore: rem1 }
      - { lun: 2, backstore: ro2 }
    acls: []
accounts: []
iscsi:
  portals: [127.0.0.1:0, 127.0.0.1:0]
YAML

node "$root/bin/vtgt.js" serve --data "$data" --config "$data/conformance.yaml" >"$OUT/service.out" 2>"$OUT/service.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q '^vtgt: ready' "$OUT/service.out" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
mapfile -t ports < <(sed -n 's|^vtgt: listening on iscsi://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$OUT/service.out")
if [ "${#ports[@]}" -lt 2 ]; then
  echo "run.sh: the service did not come up with two portals:" >&2; cat "$OUT/service.out" "$OUT/service.log" >&2; exit 2
fi
P1=${ports[0]}; P2=${ports[1]}
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
