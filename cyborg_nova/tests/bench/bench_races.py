"""Many boots racing for the last GPUs, in Nova's functional harness.

A benchmark, not a test: *hosts* computes with *gpus* GPUs each (over two
NUMA nodes) and more one-GPU server requests than GPUs, all POSTed before
any is waited for, so that the conductor, the scheduler's Placement claims
and the computes' device picks interleave.  Real Nova API, conductor,
scheduler, Placement and computes on fake libvirt (see
:mod:`cyborg_nova.tests.functional.test_races`, the small version that is
a test).

It prints what happened: requests, servers ACTIVE and ERROR (with their
fault messages), the conflicts and retries Nova logged on the way
(Placement claims refused, report-client retries, scheduler give-ups,
compute-side claim failures, reschedules), and whether every GPU went to
at most one guest and Placement's usage equals the GPUs attached.  Exit
status 1 when a GPU was handed out twice, Placement disagrees, a failed
server kept an allocation or failed with anything but NoValidHost.  GPUs
left free while requests failed are reported, not failed on: that is
Nova's scheduler claiming only the first allocation candidate of a host,
which concurrent requests all share (``--randomize-candidates`` sets
Placement's ``randomize_allocation_candidates``, which spreads them).

The harness has no network: Placement answers in-process without
yielding, so by default every Placement call of Nova first waits 2 ms
(``--latency-ms``), as over a network, to let the requests interleave;
``--libvirt-latency-ms`` does the same for libvirt's answers.

Run ``python -m cyborg_nova.tests.bench.bench_races [--quick] [--hosts 4
--gpus 4 --requests 24]`` with the environment ``make bench`` sets (Nova's
functional-test variables).
"""

import argparse
import collections
import logging
import re
import sys
import time
import unittest

import fixtures

from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.tests.functional import test_races
from cyborg_nova.virt_hooks import host_devices

#: What to count in the logs, by name: (logger name prefix, pattern).
SIGNALS = collections.OrderedDict([
    ('placement claims refused (409)',
     ('nova.scheduler.client.report', re.compile(
         r'Failed to save allocation for .* Got HTTP 409'))),
    ('report-client retries (generation conflict)',
     ('nova.scheduler.client.report', re.compile(r'; retrying\.\.\.'))),
    ('scheduler gave up claiming on every host',
     ('nova.scheduler', re.compile(
         r'Unable to successfully claim against any host'))),
    ('no allocation candidates from Placement',
     ('nova.scheduler', re.compile(r'Got no allocation candidates'))),
    ('compute-side device claim failed',
     ('', re.compile(r'free healthy device\(s\) but Placement allocated|'
                     r'NoFreeDevice'))),
    ('reschedules',
     ('nova.compute', re.compile(r'[Rr]e-?scheduled|Retrying build'))),
    ('inventory generation conflicts (benign)',
     ('nova.scheduler.client.report', re.compile(
         r'Failed to update inventory.*generation conflict', re.S))),
])


class Counter(logging.Handler):
    """Counts log records matching :data:`SIGNALS`."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.counts = collections.Counter()

    def emit(self, record):
        try:
            text = record.getMessage()
        except Exception:
            return
        for name, (prefix, pattern) in SIGNALS.items():
            if record.name.startswith(prefix) and pattern.search(text):
                self.counts[name] += 1


class RaceBench(gpu_base.GPUTestBase):

    HOSTS = 4
    GPUS = 4
    REQUESTS = 24
    TIMEOUT = 300
    LATENCY = test_races.PLACEMENT_LATENCY
    RANDOMIZE = False
    LIBVIRT_LATENCY = 0.0

    def test_race(self):
        self.flags(cores=-1, ram=-1, instances=-1, group='quota')
        if self.LATENCY:
            test_races.placement_latency(self, self.LATENCY)
        inflight = self._watch_claims()
        test_races.patient_cell_targeting(self)
        if self.RANDOMIZE:
            test_races.randomize_candidates(self)
        if self.LIBVIRT_LATENCY:
            test_races.libvirt_latency(self, self.LIBVIRT_LATENCY)
        gpu_nodes = [i * 2 // self.GPUS for i in range(self.GPUS)]
        hosts = ['host%d' % (i + 1) for i in range(self.HOSTS)]
        for host in hosts:
            self.start_gpu_compute(host, gpu_nodes=gpu_nodes)
        flavor = self.gpu_flavor(gpus=1)
        counter = Counter()
        root = logging.getLogger()
        root.addHandler(counter)
        self.addCleanup(root.removeHandler, counter)

        t0 = time.perf_counter()
        servers = test_races.boot_all(self, flavor, self.REQUESTS,
                                      timeout=self.TIMEOUT)
        wall = time.perf_counter() - t0

        gpus = test_races.attached(self)
        usage = {}
        for host in hosts:
            usage.update(self.gpu_usage(host))
        faults = collections.Counter(
            s['fault']['message'] for s in servers
            if s['status'] == 'ERROR')
        by_host = collections.Counter(
            self.admin_api.get_server(s['id'])['OS-EXT-SRV-ATTR:host']
            for s in servers if s['status'] == 'ACTIVE')
        type(self).report = dict(
            inflight=inflight, wall=wall, servers=servers, gpus=gpus,
            usage=usage, faults=faults, by_host=by_host, counts=counter.counts,
            leaked=[s['id'] for s in servers if s['status'] == 'ERROR' and
                    self.placement.get('/allocations/%s' % s['id']
                                       ).body['allocations']])

    def _watch_claims(self):
        """Count device claims made while another spawn on the same host
        held one (the compute-side race), and the most at once."""
        seen = collections.Counter()
        real = host_devices.HostDevices.claim

        def claim(hd, instance_uuid, *args, **kwargs):
            others = [u for u in hd._pending if u != instance_uuid]
            if others:
                seen['overlapping'] += 1
            seen['max'] = max(seen['max'], len(others) + 1)
            return real(hd, instance_uuid, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.virt_hooks.host_devices.HostDevices.claim', claim))
        return seen


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.tests.bench.bench_races',
        description='Many boots at once racing for the last GPUs.')
    parser.add_argument('--hosts', type=int, default=4)
    parser.add_argument('--gpus', type=int, default=4,
                        help='GPUs per host, over 2 NUMA nodes')
    parser.add_argument('--requests', type=int, default=24)
    parser.add_argument('--latency-ms', type=float,
                        default=test_races.PLACEMENT_LATENCY * 1000,
                        help='wait before every Placement call of Nova '
                             '(0: none; the harness has no network)')
    parser.add_argument('--libvirt-latency-ms', type=float, default=0.0,
                        help='answer domain listings and definitions this '
                             'late, as libvirt through a thread pool does')
    parser.add_argument('--randomize-candidates', action='store_true',
                        help='Placement\'s [placement] '
                             'randomize_allocation_candidates = True')
    parser.add_argument('--quick', action='store_true',
                        help='2 hosts x 2 GPUs, 6 requests')
    args = parser.parse_args(argv)
    if args.quick:
        args.hosts, args.gpus, args.requests = 2, 2, 6
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    RaceBench.HOSTS, RaceBench.GPUS = args.hosts, args.gpus
    RaceBench.REQUESTS = args.requests
    RaceBench.LATENCY = args.latency_ms / 1000.0
    RaceBench.RANDOMIZE = args.randomize_candidates
    RaceBench.LIBVIRT_LATENCY = args.libvirt_latency_ms / 1000.0
    case = RaceBench('test_race')
    result = unittest.TestResult()
    t0 = time.perf_counter()
    case.run(result)
    total = time.perf_counter() - t0
    for _, trace in result.errors + result.failures:
        print(trace)
    if not result.wasSuccessful():
        return 1
    r = RaceBench.report
    servers = r['servers']
    active = sum(1 for s in servers if s['status'] == 'ACTIVE')
    capacity = args.hosts * args.gpus
    double = len(r['gpus']) - len(set(r['gpus']))
    used = sum(r['usage'].values())
    print('Boots racing for the last GPUs: %d hosts x %d GPUs = %d GPUs, '
          '%d one-GPU requests POSTed at once; %.1f ms before each '
          'Placement call, %.1f ms libvirt answer delay; Placement '
          'randomize_allocation_candidates=%s'
          % (args.hosts, args.gpus, capacity, args.requests,
             args.latency_ms, args.libvirt_latency_ms,
             args.randomize_candidates))
    print('  requests:            %d' % len(servers))
    print('  ACTIVE:              %d (per host: %s)' % (active, ', '.join(
        '%s=%d' % kv for kv in sorted(r['by_host'].items()))))
    print('  ERROR:               %d' % (len(servers) - active))
    for message, n in sorted(r['faults'].items()):
        print('    %3d x %s' % (n, message))
    print('  conflicts and retries seen in the logs:')
    for name in SIGNALS:
        print('    %-46s %d' % (name, r['counts'].get(name, 0)))
    print('    %-46s %d (at most %d spawns claiming at once on one host)'
          % ('device claims while another spawn held one',
             r['inflight'].get('overlapping', 0),
             r['inflight'].get('max', 0)))
    print('  GPUs attached:       %d, distinct %d (handed out twice: %d)'
          % (len(r['gpus']), len(set(r['gpus'])), double))
    print('  Placement PGPU used: %d (%s)' % (
        used, 'equals the GPUs attached' if used == len(r['gpus'])
        else 'DIFFERS from the GPUs attached'))
    print('  allocations leaked by failed servers: %d' % len(r['leaked']))
    unclean = sum(n for m, n in r['faults'].items()
                  if 'No valid host was found' not in m)
    stranded = min(capacity, args.requests) - active
    print('  GPUs left free while requests failed: %d%s' % (
        stranded, ' (Nova\'s scheduler claims only the first allocation '
        'candidate of each host; try --randomize-candidates)'
        if stranded else ''))
    print('  wall time, first POST to last server settled: %.1f s '
          '(%.2f s per request); whole run with set-up: %.1f s'
          % (r['wall'], r['wall'] / max(1, len(servers)), total))
    safe = (double == 0 and used == len(r['gpus']) and not r['leaked']
            and not unclean)
    print('  safety (no GPU twice, Placement = attached, no leak, clean '
          'NoValidHost): %s' % ('OK' if safe else 'VIOLATED'))
    return 0 if safe else 1


if __name__ == '__main__':
    sys.exit(main())
