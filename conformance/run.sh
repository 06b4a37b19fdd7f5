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
#   lun3  thin file with 512-byte logical blocks on 4 KiB physical blocks: the tests that need
#         LOGICAL BLOCKS PER PHYSICAL BLOCK >= 2, which skip on lun0
#   lun4  thin file (64 MiB) for the SANITIZE family, run with iscsi-test-cu --allow-sanitize
#         directly (the shared conformance script never passes that flag)
# Exits non-zero if any test fails, or is skipped without being listed in conformance/SKIPS.md
# under that LUN's heading.
#
# VTGT_CONFORMANCE_ISCSI_THREADS=N: serve with N connection threads (performance.iscsiThreads) and
# move every session that can move to one, so the suite runs against the threaded connection path.
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
  - { name: phys3, type: file, path: phys3.img, size: 64MiB, physicalBlockSize: 4096 }
  - { name: san4, type: file, path: san4.img, size: 64MiB }
targets:
  - name: $IQN
    luns:
      - { lun: 0, backstore: thin0 }
      - { lun: 1, backstore: rem1 }
      - { lun: 2, backstore: ro2 }
      - { lun: 3, backstore: phys3 }
      - { lun: 4, backstore: san4 }
    acls: []
accounts: []
iscsi:
  portals: [127.0.0.1:0, 127.0.0.1:0]
YAML
threads=${VTGT_CONFORMANCE_ISCSI_THREADS:-0}
if [ "$threads" != 0 ]; then
  printf 'performance:\n  iscsiThreads: %s\n' "$threads" >>"$data/conformance.yaml"
  export VTGT_ISCSI_PLACEMENT=threads
fi

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
CONF_TESTS=ALL.CompareAndWrite.InvalidDataOutSize,ALL.WriteSame10.InvalidDataOutSize,ALL.WriteSame10.UnmapUnaligned,ALL.WriteSame16.InvalidDataOutSize,ALL.WriteSame16.UnmapUnaligned \
  "$CONF" "$base/3" "$OUT/lun3" | tail -1
# SANITIZE: every test of the family but Sanitize.Reset (see SKIPS.md), verbose so skips show.
SANITIZE_TESTS=ALL.Sanitize.BlockErase,ALL.Sanitize.BlockEraseReserved,ALL.Sanitize.CryptoErase,ALL.Sanitize.CryptoEraseReserved,ALL.Sanitize.ExitFailureMode,ALL.Sanitize.InvalidServiceAction,ALL.Sanitize.Overwrite,ALL.Sanitize.OverwriteReserved,ALL.Sanitize.Readonly,ALL.Sanitize.Reservations
mkdir -p "$OUT/lun4"
timeout 600 iscsi-test-cu --dataloss --allow-sanitize --verbose -t "$SANITIZE_TESTS" \
  --initiator-name=iqn.2026-11.harness:init1 --initiator-name-2=iqn.2026-11.harness:init2 "$base/4" \
  >"$OUT/lun4/text-verbose.txt" 2>&1
echo "sanitize: iscsi-test-cu exit $?"

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
total = {'pass': 0, 'fail': 0, 'skip': 0, 'total': 0}
for lun in ('lun0', 'lun1', 'lun2', 'lun3'):
    path = os.path.join(out, lun, 'summary.json')
    try:
        s = json.load(open(path))
    except Exception as e:
        print(f'{lun}: no summary ({e})'); bad += 1; continue
    t = s['totals']
    for k in total:
        total[k] += t[k]
    print(f"{lun}: {t['pass']} passed, {t['fail']} failed, {t['skip']} skipped of {t['total']}")
    for n in s['failed']:
        print(f'{lun}: FAILED {n}'); bad += 1
    for n in s['skipped']:
        if n not in allowed.get(lun, set()):
            print(f"{lun}: SKIPPED and not in SKIPS.md: {n} ({s['results'][n].get('skip_reason')})"); bad += 1
    if t['total'] == 0:
        bad += 1
# lun4: SANITIZE family from iscsi-test-cu's verbose text ("  Test: NAME ..." then "passed"/"FAILED").
tests, cur = {}, None
try:
    text = open(os.path.join(out, 'lun4', 'text-verbose.txt'), errors='replace').read()
except OSError as e:
    text = ''
    print(f'lun4: no output ({e})'); bad += 1
for line in text.splitlines():
    m = re.match(r'^Suite: (.+?)\s*$', line)
    if m:
        suite = m.group(1)
        continue
    m = re.match(r'^  Test: (.+?) \.\.\.(.*)$', line)
    if m:
        cur = f'ALL.{suite}.{m.group(1)}'
        tests[cur] = 'pending'
        line = m.group(2)
    if cur is None:
        continue
    if '[SKIPPED]' in line and tests[cur] == 'pending':
        tests[cur] = 'skip'
    v = re.match(r'(passed|FAILED)', line)  # CUnit's verdict is unindented; libiscsi's messages are not
    if v and tests[cur] in ('pending', 'skip'):
        tests[cur] = 'fail' if v.group(1) == 'FAILED' else ('skip' if tests[cur] == 'skip' else 'pass')
        cur = None
t4 = {'pass': 0, 'fail': 0, 'skip': 0, 'total': len(tests)}
for n, st in tests.items():
    st = 'fail' if st == 'pending' else st
    t4[st] += 1
    if st == 'fail':
        print(f'lun4: FAILED {n}'); bad += 1
    if st == 'skip' and n not in allowed.get('lun4', set()):
        print(f'lun4: SKIPPED and not in SKIPS.md: {n}'); bad += 1
if not tests:
    bad += 1
for k in total:
    total[k] += t4[k]
print(f"lun4: {t4['pass']} passed, {t4['fail']} failed, {t4['skip']} skipped of {t4['total']}")
print('conformance/run.sh: OK' if bad == 0 else f'conformance/run.sh: {bad} problem(s); results in {out}')
print(f"conformance: {total['pass']} passed, {total['fail']} failed, {total['skip']} skipped of {total['total']}")
sys.exit(1 if bad else 0)
PY
