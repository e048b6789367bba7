"""Placement's answer to multi-GPU requests: our provider layout against one
provider per GPU.

Placement runs in this process (the ``openstack-placement`` package with
its own test fixture: an in-memory sqlite database, the WSGI app behind
wsgi-intercept, no auth).  Every host has 8 GPUs over 2 NUMA nodes and a
root provider with CPU, memory and disk, created through the Placement API:

``ours``
    one child per NUMA node (``<host>_PGPU_10de_2330_NUMA<n>``), inventory
    ``PGPU`` = 4: a request for *k* GPUs is one request group,
    ``resources=VCPU:2,MEMORY_MB:1024,DISK_GB:10,PGPU:k``, as Nova builds
    it from ``resources:PGPU=k``.  8 GPUs span both nodes, so one group
    cannot hold them; the 8-GPU flavor asks ``resources1:PGPU=4``,
    ``resources2:PGPU=4`` (``group_policy=none``), and the one-group form
    is shown too;
``per-device``
    one child per GPU, inventory ``PGPU`` = 1 (Nova's PCI-in-Placement
    layout): *k* GPUs are *k* request groups ``resources<i>=PGPU:1`` with
    ``group_policy=none``.

Each request is ``GET /allocation_candidates`` at microversion 1.36 with
``limit=1000`` (Nova's ``[scheduler] max_placement_results``), the call
that dominates a multi-GPU request's scheduling time (the filters then see
at most that many candidates); the table shows the candidates returned,
how many hosts they cover, and the median time (HTTP through
wsgi-intercept included).  Placement runs with its defaults, and with the
settings its documentation asks for wide trees (``[placement]
max_allocation_candidates = 1000``,
``allocation_candidates_generation_strategy = breadth-first``,
``[workarounds] optimize_for_wide_provider_trees = True``).  Cells that
would take minutes (per-device, defaults, more than 4 GPUs: 8!/(8-k)!
candidates per host) are not run, and any cell stops once its time budget
is spent.

Run ``python -m cyborg_nova.tests.bench.bench_multi_gpu [--quick]``.
"""

import argparse
import logging
import math
import platform
import statistics
import sys
import time
import uuid

HOSTS = 20
QUICK_HOSTS = 10
REPEATS = 15
QUICK_REPEATS = 5
QUICK_ARGV = ('--quick',)
MICROVERSION = '1.36'
LIMIT = 1000                       # Nova's [scheduler] max_placement_results
NODES = 2
GPUS_PER_NODE = 4
GPUS = NODES * GPUS_PER_NODE
COUNTS = (1, 2, 4, 8)
BASE = 'VCPU:2,MEMORY_MB:1024,DISK_GB:10'
#: Seconds one cell may take (its first request always runs).
BUDGET_S = 60.0
#: Per-device with Placement's defaults is not run above this many GPUs.
PER_DEVICE_DEFAULT_MAX = 4

DEFAULTS = 'defaults'
TUNED = 'tuned'
#: (group, option, value) of the tuned settings.
TUNED_OPTIONS = (
    ('placement', 'max_allocation_candidates', 1000),
    ('placement', 'allocation_candidates_generation_strategy',
     'breadth-first'),
    ('workarounds', 'optimize_for_wide_provider_trees', True),
)

OURS = 'ours'
PER_DEVICE = 'per-device'
_NAMESPACE = uuid.UUID('2f5e8a51-6c0b-4d57-9a0e-bd1c7a3e4f60')


def _uuid(*parts):
    return str(uuid.uuid5(_NAMESPACE, '/'.join(str(p) for p in parts)))


# -- Placement in process -----------------------------------------------------

class Placement:
    """Placement's own test fixture, started with *options*, and a small
    client for it."""

    def __init__(self, options=()):
        self.options = tuple(options)

    def __enter__(self):
        from placement.tests.functional.fixtures import placement as pfix
        import requests

        options = self.options

        class Fixture(pfix.PlacementFixture):
            def _configure_placement(self, conf_fixture):
                for group, name, value in options:
                    conf_fixture.config(group=group, **{name: value})

        self.fixture = Fixture()
        self.fixture.setUp()
        self.session = requests.Session()
        self.session.headers.update({
            'x-auth-token': 'admin',
            'OpenStack-API-Version': 'placement %s' % MICROVERSION,
            'Accept': 'application/json'})
        return self

    def __exit__(self, *exc):
        self.fixture.cleanUp()

    def call(self, method, path, body=None):
        response = self.session.request(
            method, self.fixture.endpoint + path, json=body)
        if response.status_code >= 400:
            raise RuntimeError('%s %s: %d %s' % (
                method, path, response.status_code, response.text[:500]))
        return response.json() if response.content else None

    def provider(self, name, uuid_, parent=None, inventories=None):
        body = {'name': name, 'uuid': uuid_}
        if parent:
            body['parent_provider_uuid'] = parent
        self.call('POST', '/resource_providers', body)
        if inventories:
            self.call('PUT', '/resource_providers/%s/inventories' % uuid_,
                      {'resource_provider_generation': 0,
                       'inventories': inventories})


def _inventory(total, max_unit=None):
    return {'total': total, 'reserved': 0, 'min_unit': 1,
            'max_unit': max_unit or total, 'step_size': 1,
            'allocation_ratio': 1.0}


def build_fleet(placement, layout, hosts):
    for h in range(hosts):
        name = 'host%03d' % h
        root = _uuid(layout, name)
        placement.provider(name, root, inventories={
            'VCPU': _inventory(64, 64),
            'MEMORY_MB': _inventory(512 * 1024),
            'DISK_GB': _inventory(2000)})
        if layout == OURS:
            for node in range(NODES):
                placement.provider(
                    '%s_PGPU_10de_2330_NUMA%d' % (name, node),
                    _uuid(layout, name, node), parent=root,
                    inventories={'PGPU': _inventory(GPUS_PER_NODE)})
        else:
            for gpu in range(GPUS):
                placement.provider(
                    '%s_PGPU_GPU%d' % (name, gpu), _uuid(layout, name, gpu),
                    parent=root, inventories={'PGPU': _inventory(1)})


# -- requests -----------------------------------------------------------------

def requests_for(layout, count):
    """``[(label, query string)]`` of a *count*-GPU flavor on *layout*."""
    if layout == OURS:
        if count <= GPUS_PER_NODE:
            return [('PGPU:%d, one group' % count,
                     'resources=%s,PGPU:%d' % (BASE, count))]
        per_node = count // NODES
        return [
            ('PGPU:%d, one group' % count,
             'resources=%s,PGPU:%d' % (BASE, count)),
            ('%d groups of PGPU:%d' % (NODES, per_node),
             'resources=%s&%s&group_policy=none' % (BASE, '&'.join(
                 'resources%d=PGPU:%d' % (i + 1, per_node)
                 for i in range(NODES)))),
        ]
    return [('%d group(s) of PGPU:1' % count,
             'resources=%s&%s&group_policy=none' % (BASE, '&'.join(
                 'resources%d=PGPU:1' % (i + 1) for i in range(count))))]


def expected_candidates(layout, label, count, hosts, settings):
    """What Placement must return (a check of the bench itself)."""
    if layout == OURS:
        if 'one group' in label and count > GPUS_PER_NODE:
            return 0
        if 'one group' in label:
            return NODES * hosts
        return math.perm(NODES, NODES) * hosts
    per_host = math.perm(GPUS, count)
    total = per_host * hosts
    if settings == TUNED:
        total = min(total, 1000)
    return min(total, LIMIT)


def time_request(placement, query, repeats, budget_s):
    """(median ms, candidates, hosts covered, runs) of one query, after
    one untimed warm-up request (timed instead when it alone spends the
    budget)."""
    path = '/allocation_candidates?%s&limit=%d' % (query, LIMIT)
    times = []
    start = time.perf_counter()
    body = placement.call('GET', path)        # warm-up, not timed
    if time.perf_counter() - start > budget_s:
        times.append((time.perf_counter() - start) * 1000.0)
        repeats = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        body = placement.call('GET', path)
        times.append((time.perf_counter() - t0) * 1000.0)
        if time.perf_counter() - start > budget_s:
            break
    candidates = body['allocation_requests']
    roots = set()
    summaries = body['provider_summaries']
    for candidate in candidates:
        for rp in candidate['allocations']:
            roots.add(summaries[rp].get('root_provider_uuid', rp))
    return statistics.median(times), len(candidates), len(roots), len(times)


# -- the run ------------------------------------------------------------------

def cells(quick):
    """``[(layout, settings, count)]`` to run, and ``[(.., why)]`` not."""
    run, skipped = [], []
    for settings in (DEFAULTS, TUNED):
        for layout in (OURS, PER_DEVICE):
            for count in COUNTS:
                if (layout == PER_DEVICE and settings == DEFAULTS and
                        count > (2 if quick else PER_DEVICE_DEFAULT_MAX)):
                    skipped.append((layout, settings, count,
                                    '%d candidates per host before the '
                                    'limit; minutes per request'
                                    % math.perm(GPUS, count)))
                    continue
                run.append((layout, settings, count))
    return run, skipped


def run(hosts, repeats, budget_s, out=print):
    logging.getLogger().setLevel(logging.WARNING)
    plan, skipped = cells(repeats == QUICK_REPEATS)
    rows, problems = [], []
    for settings in (DEFAULTS, TUNED):
        options = TUNED_OPTIONS if settings == TUNED else ()
        for layout in (OURS, PER_DEVICE):
            counts = [c for lay, s, c in plan
                      if lay == layout and s == settings]
            if not counts:
                continue
            with Placement(options) as placement:
                build_fleet(placement, layout, hosts)
                for count in counts:
                    for label, query in requests_for(layout, count):
                        ms, found, covered, runs = time_request(
                            placement, query, repeats, budget_s)
                        want = expected_candidates(layout, label, count,
                                                   hosts, settings)
                        if found != want:
                            problems.append(
                                '%s/%s %s: %d candidates, expected %d' % (
                                    layout, settings, label, found, want))
                        rows.append(dict(layout=layout, settings=settings,
                                         count=count, label=label, ms=ms,
                                         candidates=found, hosts=covered,
                                         runs=runs))
                        out('  %-10s %-8s %d GPU(s) %-26s %5d cand. '
                            '%3d hosts %9.1f ms' % (
                                layout, settings, count, label, found,
                                covered, ms), flush=True)
    return rows, skipped, problems


def format_table(rows, hosts):
    lines = ['%-10s %-9s %-5s %-26s %11s %6s %10s %5s' % (
        'layout', 'placement', 'GPUs', 'request', 'candidates', 'hosts',
        'median ms', 'runs')]
    for r in rows:
        lines.append('%-10s %-9s %-5d %-26s %11d %3d/%-2d %10.1f %5d' % (
            r['layout'], r['settings'], r['count'], r['label'],
            r['candidates'], r['hosts'], hosts, r['ms'], r['runs']))
    return '\n'.join(lines)


def side_by_side(rows):
    """Per GPU count: ours (the form that works) against per-device."""
    def best(layout, settings, count):
        found = [r for r in rows if r['layout'] == layout and
                 r['settings'] == settings and r['count'] == count and
                 r['candidates']]
        return found[-1] if found else None

    lines = ['%-5s | %-24s | %-24s | %-24s' % (
        'GPUs', 'ours (defaults)', 'per-device (defaults)',
        'per-device (tuned)'),
        '%-5s | %-24s | %-24s | %-24s' % ('', 'cand.  median ms',
                                          'cand.  median ms',
                                          'cand.  median ms')]
    for count in COUNTS:
        cols = []
        for layout, settings in ((OURS, DEFAULTS), (PER_DEVICE, DEFAULTS),
                                 (PER_DEVICE, TUNED)):
            r = best(layout, settings, count)
            cols.append('%5d  %9.1f' % (r['candidates'], r['ms'])
                        if r else '   (not run)')
        lines.append('%-5d | %-24s | %-24s | %-24s' % ((count,) + tuple(
            cols)))
    ours1 = best(OURS, DEFAULTS, 1)
    ours8 = best(OURS, DEFAULTS, 8)
    if ours1 and ours8:
        lines.append('ours, 8-GPU / 1-GPU latency: %.2fx (goal: <= 2x)'
                     % (ours8['ms'] / ours1['ms']))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.tests.bench.bench_multi_gpu',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='%d hosts, %d repeats, per-device with '
                             'defaults up to 2 GPUs' % (QUICK_HOSTS,
                                                        QUICK_REPEATS))
    parser.add_argument('--hosts', type=int, default=None)
    parser.add_argument('--repeats', type=int, default=None)
    parser.add_argument('--budget', type=float, default=BUDGET_S,
                        help='seconds one cell may take (default %(default)s)')
    args = parser.parse_args(argv)
    hosts = args.hosts or (QUICK_HOSTS if args.quick else HOSTS)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)

    from importlib import metadata

    import placement
    started = time.perf_counter()
    print('Placement allocation candidates for k-GPU requests: %d hosts of '
          '%d GPUs on %d NUMA nodes; GET /allocation_candidates, '
          'microversion %s, limit=%d; median of up to %d runs'
          % (hosts, GPUS, NODES, MICROVERSION, LIMIT, repeats))
    print('Python %s, openstack-placement %s (%s), %s' % (
        platform.python_version(), metadata.version('openstack-placement'),
        placement.__path__[0], platform.machine()))
    print('tuned = %s' % ', '.join('[%s] %s = %s' % o for o in TUNED_OPTIONS))
    print()
    rows, skipped, problems = run(hosts, repeats, args.budget)
    print()
    print(format_table(rows, hosts))
    for layout, settings, count, why in skipped:
        print('%-10s %-9s %-5d not run: %s' % (layout, settings, count, why))
    print()
    print(side_by_side(rows))
    print()
    if problems:
        print('CORRECTNESS: %d problem(s)' % len(problems))
        for p in problems:
            print('  ' + p)
    else:
        print('Correctness: every request returned the expected number of '
              'candidates.')
    print('Total %.0f s.' % (time.perf_counter() - started))
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
