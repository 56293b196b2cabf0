#!/usr/bin/env bash
# The bad-config corpus: every file under tests/fixtures/config/bad/ goes through the real
# `failoverd --check-config`. Each file's header says what must happen:
#   # expect-exit: 2
#   # expect: :LINE: key: message fragment   (":..." is prefixed with the file's path; @DIR@ is
#                                             the directory the file was copied to)
# Every run must also print a bounded number of lines, no raw control byte (only newlines), and
# nothing on stdout. Then what cannot be a file in git: an empty file, a directory, /dev/null, a
# FIFO (must not block), a file over the size limit and a large file of random bytes.
set -euo pipefail
: "${FAILOVERD_BIN:?set by ctest}" "${FAILOVERD_SOURCE_DIR:?set by ctest}"

work=$(mktemp -d /tmp/failoverd-corpus-XXXXXX)
trap 'rm -rf "$work"' EXIT
corpus="$FAILOVERD_SOURCE_DIR/tests/fixtures/config/bad"
dir="$work/bad"
cp -r "$corpus" "$dir"

# The files the corpus names by relative path; git keeps no 0600 modes, so they are made here.
mkdir -p "$dir/keys" "$dir/hooks"
head -c 32 /dev/urandom >"$dir/keys/good.key"
printf 's3cret!\n' >"$dir/keys/short.key"
: >"$dir/keys/empty.key"
head -c 32 /dev/urandom >"$dir/keys/open.key"
chmod 600 "$dir/keys/good.key" "$dir/keys/short.key" "$dir/keys/empty.key"
chmod 644 "$dir/keys/open.key"
printf '#!/bin/sh\nexit 0\n' >"$dir/hooks/ok.sh"
cp "$dir/hooks/ok.sh" "$dir/hooks/noexec.sh"
chmod 755 "$dir/hooks/ok.sh"
chmod 644 "$dir/hooks/noexec.sh"

failures=0
checked=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# check_run NAME CONFIG WANT_RC FRAGMENT: runs --check-config on CONFIG (within 20 s) and checks
# the exit code, the fragment in stderr, the bound on lines and the absence of control bytes.
check_run() {
    local name=$1 config=$2 want_rc=$3 fragment=$4 rc=0
    timeout 20 env -u CREDENTIALS_DIRECTORY "$FAILOVERD_BIN" --check-config --config "$config" \
        >"$work/out" 2>"$work/err" || rc=$?
    checked=$((checked + 1))
    if [ "$rc" -ne "$want_rc" ]; then
        fail "$name: exit $rc, expected $want_rc; stderr: $(head -c 2000 "$work/err")"
        return
    fi
    if ! grep -qF -- "$fragment" "$work/err"; then
        fail "$name: stderr lacks '$fragment'; stderr: $(head -c 2000 "$work/err")"
    fi
    if [ "$want_rc" -ne 0 ] && [ -s "$work/out" ]; then
        fail "$name: wrote to stdout: $(head -c 500 "$work/out")"
    fi
    local lines
    lines=$(wc -l <"$work/err")
    if [ "$lines" -gt 21 ]; then
        fail "$name: $lines lines of errors; at most 20 and a count are printed"
    fi
    if LC_ALL=C grep -qaP '[\x00-\x09\x0b-\x1f\x7f]' "$work/err" "$work/out"; then
        fail "$name: a raw control byte in the output"
    fi
}

for file in "$dir"/*.conf; do
    name=$(basename "$file" .conf)
    want_rc=$(sed -n 's/^# expect-exit: //p' "$file" | head -n 1)
    fragment=$(sed -n 's/^# expect: //p' "$file" | head -n 1)
    if [ -z "$want_rc" ] || [ -z "$fragment" ]; then
        fail "$name: no '# expect-exit:' or '# expect:' header"
        continue
    fi
    fragment=${fragment//@DIR@/$dir}
    case "$fragment" in :*) fragment="$file$fragment" ;; esac
    check_run "$name" "$file" "$want_rc" "$fragment"
done
corpus_files=$checked
[ "$corpus_files" -ge 60 ] || fail "only $corpus_files files in the corpus; at least 60 expected"

allowed="(allowed: a regular file of at most 1048576 bytes)"
: >"$work/empty.conf"
check_run "an empty file" "$work/empty.conf" 2 "$work/empty.conf: holds no settings"
check_run "a directory" "$dir" 2 "$dir: is a directory, not a regular file $allowed"
check_run "/dev/null" /dev/null 2 "/dev/null: is a character device, not a regular file $allowed"
mkfifo "$work/fifo.conf"
check_run "a FIFO nobody writes to" "$work/fifo.conf" 2 \
    "$work/fifo.conf: is a FIFO, not a regular file $allowed"
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' '#' >"$work/big.conf"
check_run "a 2 MiB file" "$work/big.conf" 2 \
    "$work/big.conf: is 2097152 bytes, over the limit of 1048576 $allowed"
head -c $((10 * 1000 * 1000)) /dev/urandom >"$work/garbage10.conf"
check_run "10 MB of random bytes" "$work/garbage10.conf" 2 "over the limit of 1048576"
# Just under the limit, random bytes are parsed: bounded output, every byte escaped.
head -c $((1024 * 1024 - 1)) /dev/urandom >"$work/garbage1.conf"
check_run "1 MiB of random bytes" "$work/garbage1.conf" 2 "more errors"

echo "checked $checked configs ($corpus_files from the corpus), $failures failure(s)" >&2
[ "$failures" -eq 0 ]
