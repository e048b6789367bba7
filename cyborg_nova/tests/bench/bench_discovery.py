"""Discovery cost on a compute host: every driver the package registers.

Times :func:`cyborg_nova.discovery.discover` on

``pcie-8gpu-2socket``
    the synthetic host of 8 H100 on 2 sockets behind 4 PCIe switches (27
    PCI devices), GPUs bound to vfio-pci, so NVML is not asked;
``h100-1gpu-vm``
    the captured H100 VM (7 PCI devices), GPU bound to nvidia, NVML
    answered by the fake built from the same capture (the real one when
    :mod:`cyborg_nova.tests.fixtures.fake_nvml` cannot be imported is never
    used: a captured tree is not this host).

with every driver in the ``cyborg_nova.drivers`` namespace enabled (those
that fail to load are listed, and cost only their failed import), in two
ways: ``load + discover`` builds the drivers each time, as a compute service
does when it starts; ``discover`` reuses them, as the periodic inventory
update does.  Prints median, min and max over N runs, after one untimed run
(plugin imports).

Run ``python -m cyborg_nova.tests.bench [--quick] discovery`` or
``python -m cyborg_nova.tests.bench.bench_discovery --help``.
"""

import argparse
import importlib.metadata
import logging
import os
import platform
import statistics
import sys
import tempfile
import time

from oslo_config import cfg

from cyborg_nova.cmd import discover as discover_cmd
from cyborg_nova import conf as cn_conf
from cyborg_nova import discovery
from cyborg_nova.tests.bench import options
from cyborg_nova.tests.fixtures import hosts

QUICK_ARGV = ('--quick',)
DEFAULT_RUNS = 30
QUICK_RUNS = 5


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.tests.bench.bench_discovery',
        description='Time device discovery on a synthetic 8-GPU host and on '
                    'the captured H100 VM, with every registered driver.')
    options.add_run_options(parser, DEFAULT_RUNS, QUICK_RUNS,
                            unit='runs per measurement',
                            log_note=': drivers warn about NVML')
    return options.parse_run_options(parser, argv, DEFAULT_RUNS, QUICK_RUNS)


def driver_names():
    """Every driver registered in the namespace, in a stable order."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(
        group=discovery.NAMESPACE)})


def make_conf(names):
    conf = cfg.ConfigOpts()
    cn_conf.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[],
         default_config_dirs=[])
    return conf, list(names)


def nvml_for(name, root):
    """The NVML a benchmark host gets: the capture's fake for the captured
    host, never this machine's."""
    if name in hosts.CAPTURED_HOSTS:
        try:
            from cyborg_nova.tests.fixtures import fake_nvml
            return fake_nvml.from_capture(name)
        except Exception:       # fake NVML not there (yet): no NVML
            pass
    return discover_cmd.OtherHostNvml(root)


def timed(fn, runs):
    """Seconds of each of *runs* calls of *fn*, and its last result."""
    times = []
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def measure(name, root, names, runs):
    conf, names = make_conf(names)

    def context():
        return discovery.make_context(conf, sysfs_root=root,
                                      nvml=nvml_for(name, root))

    discovery.discover(context(), names=names)     # imports, untimed
    cold, result = timed(lambda: discovery.discover(context(), names=names),
                         runs)
    drivers = result.drivers
    warm, result = timed(
        lambda: discovery.discover(context(), drivers=drivers), runs)
    return {'host': name, 'cold': cold, 'warm': warm,
            'devices': len(result.devices),
            'loaded': [n for n in names if n in drivers],
            'failed': sorted(set(names) - set(drivers))}


def fmt_ms(seconds):
    return '%.2f' % (seconds * 1000)


def report(rows, runs):
    lines = ['%-20s %-16s %8s %8s %8s %8s' % (
        'host', 'what', 'devices', 'median', 'min', 'max'),
        '%-20s %-16s %8s %8s %8s %8s' % ('', '', '', 'ms', 'ms', 'ms')]
    for row in rows:
        for label, key in (('load + discover', 'cold'),
                           ('discover', 'warm')):
            times = row[key]
            lines.append('%-20s %-16s %8d %8s %8s %8s' % (
                row['host'], label, row['devices'],
                fmt_ms(statistics.median(times)), fmt_ms(min(times)),
                fmt_ms(max(times))))
    lines.append('')
    for row in rows:
        lines.append('%s: drivers loaded: %s; failed to load: %s' % (
            row['host'], ', '.join(row['loaded']) or 'none',
            ', '.join(row['failed']) or 'none'))
    lines.append('%d runs each.' % runs)
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(stream=sys.stderr,
                        level=getattr(logging, args.log_level.upper()))
    names = driver_names()
    if not names:
        print('no drivers registered in %s: install the package (pip '
              'install --no-deps --no-build-isolation .)'
              % discovery.NAMESPACE, file=sys.stderr)
        return 1
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix='cyborg-nova-bench-') as tmp:
        root = os.path.join(tmp, 'sys')
        os.makedirs(root)
        hosts.pcie_8gpu_2socket(root)
        rows.append(measure('pcie-8gpu-2socket', root, names, args.runs))
        captured = hosts.captured_host('h100-1gpu-vm')
        if os.path.isdir(captured):
            rows.append(measure('h100-1gpu-vm', captured, names, args.runs))
    print('Discovery cost (cyborg_nova.discovery.discover), every '
          'registered driver enabled: %s' % ', '.join(names))
    print('Python %s, %s, %d CPUs' % (platform.python_version(),
                                      platform.machine(), os.cpu_count()))
    print()
    print(report(rows, args.runs))
    print('Total %.1f s.' % (time.perf_counter() - start))
    return 0


if __name__ == '__main__':
    sys.exit(main())
