"""Run the benchmarks: ``python -m cyborg_nova.tests.bench [--quick] [names]``.

*names* pick modules of this package (``scheduler`` or ``bench_scheduler``,
``discovery``, ``nvml``, ``spawn``); without names every one of
:data:`MODULES` that exists runs, in that order.  Each runs in a process of
its own (``python -m cyborg_nova.tests.bench.<module>``), so that one
benchmark's configuration, monkey patching and heap do not colour the next
one's timings.

``--quick`` asks each module for its quick mode: the module's
``QUICK_ARGV`` when it defines one, else ``--quick`` when its source
mentions that option, else its default run.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time

PACKAGE = 'cyborg_nova.tests.bench'
MODULES = ('bench_scheduler', 'bench_discovery', 'bench_nvml',
           'bench_multi_gpu', 'bench_races', 'bench_spawn')


def module_name(name):
    return name if name.startswith('bench_') else 'bench_' + name


def available():
    return [m for m in MODULES
            if importlib.util.find_spec('%s.%s' % (PACKAGE, m)) is not None]


def quick_argv(module):
    """The arguments of *module*'s quick mode, read without importing it
    (importing a benchmark may start Nova's monkey patching)."""
    spec = importlib.util.find_spec('%s.%s' % (PACKAGE, module))
    with open(spec.origin, encoding='utf-8') as f:
        source = f.read()
    if 'QUICK_ARGV' in source:
        mod = importlib.import_module('%s.%s' % (PACKAGE, module))
        return list(mod.QUICK_ARGV)
    return ['--quick'] if "'--quick'" in source else []


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m %s' % PACKAGE,
        description='Run the benchmarks of cyborg-nova.')
    parser.add_argument('--quick', action='store_true',
                        help='each benchmark\'s quick mode')
    parser.add_argument('names', nargs='*',
                        help='benchmarks to run (default: all of %s that '
                             'exist)' % ', '.join(MODULES))
    args = parser.parse_args(argv)

    present = available()
    if args.names:
        wanted = [module_name(n) for n in args.names]
        unknown = [n for n in wanted if n not in present]
        if unknown:
            parser.error('no benchmark %s here; there are: %s' % (
                ', '.join(unknown), ', '.join(present) or 'none'))
    else:
        wanted = present

    failed = []
    for module in wanted:
        extra = quick_argv(module) if args.quick else []
        cmd = [sys.executable, '-m', '%s.%s' % (PACKAGE, module)] + extra
        print('==> %s' % ' '.join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=os.environ.copy())
        print('==> %s: %s in %.0f s' % (
            module, 'ok' if rc == 0 else 'FAILED (exit %d)' % rc,
            time.perf_counter() - t0), flush=True)
        if rc:
            failed.append(module)
    if failed:
        print('failed: %s' % ', '.join(failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
