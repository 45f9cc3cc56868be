#!/usr/bin/env bash
# franz-go's own integration tests (package pkg/kgo of github.com/twmb/franz-go) against a
# broker. The franz-go version is the one pinned in compat-tests/go/go.mod.
#
# Usage: compat-tests/franz-go-suite/run.sh BOOTSTRAP [--all [--skip REGEXP]] [--out FILE]
#   (default)    run the tests in allowlist.txt; every one of them must pass
#   --all        run the whole kgo test suite (to grow the allow-list) and print the tests that
#                pass but are not allow-listed yet; exits 0. About 3 minutes against Apache
#                Kafka, 1 minute against this broker
#   --skip RE    go test -skip: leave out the top-level tests matching RE
#   --out FILE   also write the `go test -v` output there
#
# Prints `PASS TestName` / `FAIL TestName: why` / `SKIP TestName: why` per top-level test,
# then `N passed, N failed`; exits 1 if an allow-listed test failed or did not report.
#
# How: `go mod download -json github.com/twmb/franz-go@VERSION` gives the module's directory
# in the module cache; `go test -c` builds pkg/kgo's test binary once (kept in .bin/, keyed
# by version), which runs in the package directory (some tests read their own sources) with
#   KGO_SEEDS=BOOTSTRAP KGO_TEST_RF=$COMPAT_REPLICATION_FACTOR KGO_TEST_RECORDS=$KGO_TEST_RECORDS KGO_LOG_LEVEL=none
# Environment: GO (default go), KGO_TEST_RECORDS (default 2000; the suite's own default is
# 500000), SUITE_TIMEOUT (seconds for the allow-listed run, default 200),
# COMPAT_REPLICATION_FACTOR (replication factor of the suite's topics, default 1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COMPAT="$(cd "$HERE/.." && pwd)"
GO="${GO:-go}"
ALLOWLIST="$HERE/allowlist.txt"

[[ $# -ge 1 ]] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
BOOTSTRAP="$1"
shift
ALL=0
OUT=""
SKIP_RE=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --all) ALL=1 ;;
        --skip) shift; SKIP_RE="${1:?--skip needs a regular expression}" ;;
        --out) shift; OUT="${1:?--out needs a file}" ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

VERSION="$(awk '$1 == "github.com/twmb/franz-go" {print $2}' "$COMPAT/go/go.mod")"
[[ -n "$VERSION" ]] || { echo "FAIL franz-go-suite: no github.com/twmb/franz-go version in $COMPAT/go/go.mod"; exit 1; }
command -v "$GO" >/dev/null || { echo "FAIL franz-go-suite: go toolchain not found ($GO)"; exit 1; }

# -- the module source at the pinned version
if ! MOD_JSON="$(cd "$COMPAT/go" && timeout 300 "$GO" mod download -json "github.com/twmb/franz-go@$VERSION" 2>&1)"; then
    echo "FAIL franz-go-suite: go mod download github.com/twmb/franz-go@$VERSION: $(echo "$MOD_JSON" | tr '\n' ' ' | cut -c1-300)"
    exit 1
fi
MOD_DIR="$(echo "$MOD_JSON" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$MOD_DIR/pkg/kgo" ]] || { echo "FAIL franz-go-suite: no pkg/kgo in module dir '$MOD_DIR'"; exit 1; }

# -- the test binary, built once per version
BIN_DIR="$HERE/.bin"
TEST_BIN="$BIN_DIR/kgo-$VERSION.test"
mkdir -p "$BIN_DIR"
if [[ ! -x "$TEST_BIN" ]]; then
    echo "franz-go-suite: building the pkg/kgo test binary of franz-go $VERSION (once)" >&2
    if ! (cd "$MOD_DIR" && timeout 900 "$GO" test -c -o "$TEST_BIN.tmp" ./pkg/kgo) > "$BIN_DIR/build.log" 2>&1; then
        echo "FAIL franz-go-suite: go test -c ./pkg/kgo failed: $(head -n 3 "$BIN_DIR/build.log" | tr '\n' ' ')"
        exit 1
    fi
    mv "$TEST_BIN.tmp" "$TEST_BIN"
fi

# -- which tests
if [[ $ALL -eq 1 ]]; then
    RUN_RE='.*'
    TIMEOUT="${SUITE_TIMEOUT:-600}"
    WANT=()
else
    mapfile -t WANT < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$ALLOWLIST")
    [[ ${#WANT[@]} -gt 0 ]] || { echo "FAIL franz-go-suite: $ALLOWLIST is empty"; exit 1; }
    RUN_RE="^($(IFS='|'; echo "${WANT[*]}"))\$"
    TIMEOUT="${SUITE_TIMEOUT:-200}"
fi

LOG="$(mktemp "${TMPDIR:-/tmp}/franz-go-suite.XXXXXX")"
trap 'rm -f "$LOG"' EXIT
rc=0
# -test.timeout makes the binary panic (with every goroutine's stack) before `timeout` kills it
(cd "$MOD_DIR/pkg/kgo" && \
    KGO_SEEDS="$BOOTSTRAP" KGO_TEST_RF="${COMPAT_REPLICATION_FACTOR:-1}" KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-2000}" KGO_LOG_LEVEL=none \
    timeout --kill-after=10 "$((TIMEOUT + 30))" "$TEST_BIN" -test.v -test.count=1 \
        -test.timeout "${TIMEOUT}s" -test.run "$RUN_RE" ${SKIP_RE:+-test.skip "$SKIP_RE"}) > "$LOG" 2>&1 || rc=$?
[[ -n "$OUT" ]] && cp "$LOG" "$OUT"

# -- one line per top-level test
python3 - "$LOG" "$rc" "$ALL" "$ALLOWLIST" "${WANT[@]}" <<'EOF'
import re, sys
log, rc, all_mode, allowlist = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
want = sys.argv[5:]
lines = open(log, errors="replace").read().splitlines()
result, why, order = {}, {}, []
current = None   # the test whose output we are reading (=== RUN/CONT/NAME)
pending = {}     # test -> its last few output lines
for ln in lines:
    m = re.match(r"^=== (RUN|CONT|NAME|PAUSE)\s+(\S+)", ln)
    if m:
        current = m.group(2).split("/")[0]
        continue
    m = re.match(r"^--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)", ln)
    if m:
        name = m.group(2)
        if "/" not in name:
            result[name] = (m.group(1), float(m.group(3)))
            order.append(name)
        continue
    m = re.match(r"^\s+(\S+_test\.go:\d+: .*)", ln)
    if m and current:
        pending.setdefault(current, []).append(m.group(1))
panic = next((ln for ln in lines if ln.startswith("panic: ")), None)
timeout_hit = any("test timed out after" in ln for ln in lines)
# on a timeout the panic lists the tests still running: report them too
if timeout_hit:
    i = next(i for i, ln in enumerate(lines) if "test timed out after" in ln)
    for ln in lines[i + 1:]:
        m = re.match(r"^\s+(Test\w+|Fuzz\w+) \(", ln)
        if m:
            if m.group(1) not in result and m.group(1) not in order:
                order.append(m.group(1))
        elif ln.strip() and not ln.strip().startswith("running tests"):
            break
npass = nfail = 0
names = order if all_mode else want
for name in names:
    st = result.get(name)
    if st is None:
        why_ = "did not report a result"
        if timeout_hit:
            why_ += " (the suite hit its -test.timeout)"
        elif panic:
            why_ += f" ({panic[:200]})"
        elif rc:
            why_ += f" (test binary exited {rc})"
        print(f"FAIL {name}: {why_}")
        nfail += 1
        continue
    status, secs = st
    # the test's own messages, without its clean-up chatter; the first ones say what broke
    msgs = [m for m in pending.get(name, [])
            if not re.search(r"FAILED TESTING|deleting (topic|group)|completed in", m)]
    detail = " | ".join(list(dict.fromkeys(msgs))[:2])[:500]
    if status == "PASS":
        print(f"PASS {name}")
        npass += 1
    elif status == "SKIP":
        print(f"SKIP {name}: {detail or 'skipped'}")
    else:
        print(f"FAIL {name}: {detail or 'failed'} ({secs:.1f}s)")
        nfail += 1
if all_mode:
    allowed = {l.split("#")[0].strip() for l in open(allowlist)} - {""}
    new = [n for n in order if result.get(n, ("",))[0] == "PASS" and n not in allowed]
    gone = [n for n in sorted(allowed) if result.get(n, ("",))[0] != "PASS"]
    print(f"# {len(order)} tests reported; passing but not allow-listed: {' '.join(new) or 'none'}")
    if gone:
        print(f"# allow-listed but not passing: {' '.join(gone)}")
print(f"{npass} passed, {nfail} failed")
sys.exit(1 if nfail and not all_mode else 0)
EOF
