#!/usr/bin/env bash
# Run stestr with the given filters and close with 'N passed, N failed'.
#
#   tools/run-stestr.sh VENV [stestr run arguments...]
#
# stestr's own output (progress, failures, 'Totals') comes first.  The
# closing line is computed from the run stestr just recorded; when stestr
# recorded no run (test discovery failed: an import error), it says so and
# counts that as one failure.  Exits non-zero on any failure.
set -uo pipefail

venv=$1
shift
stestr="$venv/bin/stestr"
python="$venv/bin/python"
here=$(cd "$(dirname "$0")" && pwd)

next_run() { cat .stestr/next-stream 2>/dev/null || echo none; }

before=$(next_run)
"$stestr" run "$@"
rc=$?
after=$(next_run)

if [[ "$before" == "$after" ]]; then
    echo "error: stestr recorded no test run (see the errors above;" \
         "an import error in a test module stops discovery)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi

"$stestr" last --subunit | "$python" "$here/subunit-summary.py"
summary_rc=$?
if [[ $rc -eq 0 ]]; then
    rc=$summary_rc
fi
exit $rc
