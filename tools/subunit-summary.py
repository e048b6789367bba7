"""Print 'N passed, N failed, N skipped' for a subunit v2 stream on stdin.

Used after ``stestr last --subunit``: a test counts once, by its final
status (expected failures count as passed, unexpected successes as failed).
Exits 1 when a test failed or when the stream holds no test at all.
"""

import sys

import subunit
import testtools

PASSED = {'success', 'xfail'}
FAILED = {'fail', 'uxsuccess'}
SKIPPED = {'skip'}


def summarise(stream):
    final = {}

    def on_test(test):
        if test['status'] in PASSED | FAILED | SKIPPED:
            final[test['id']] = test['status']

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    try:
        subunit.ByteStreamToStreamResult(
            stream, non_subunit_name='stdout').run(result)
    finally:
        result.stopTestRun()
    counts = {'passed': 0, 'failed': 0, 'skipped': 0}
    for status in final.values():
        if status in PASSED:
            counts['passed'] += 1
        elif status in FAILED:
            counts['failed'] += 1
        else:
            counts['skipped'] += 1
    return counts


def main():
    counts = summarise(sys.stdin.buffer)
    print('%(passed)d passed, %(failed)d failed, %(skipped)d skipped'
          % counts)
    if counts['failed'] or not sum(counts.values()):
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
