"""Scheduler cost per request: Nova's GPU pipeline against cyborg-nova's.

One run times, over the same fleets (half the hosts with 8 GPUs over 2 NUMA
nodes, half without; see :mod:`cyborg_nova.tests.bench.hosts`) and the same
one-GPU server with shared and with dedicated CPUs:

``floor``
    ``ComputeFilter`` alone, with the RAM and CPU weighers every pipeline
    has;
``nova``
    Nova's own GPU pipeline: ``ComputeFilter``, ``PciPassthroughFilter``,
    ``NUMATopologyFilter``; ``PCIWeigher``.  The flavor says
    ``pci_passthrough:alias=gpu:1``; hosts carry real ``PciDeviceStats``
    from ``[pci] device_spec``; legacy PCI tracking (no PCI in Placement),
    so every host has one root-only allocation candidate;
``ours``
    cyborg-nova as an operator enables it: ``ComputeFilter``,
    ``AcceleratorNUMAFilter``, ``AcceleratorAwareNUMATopologyFilter`` (in
    place of Nova's ``NUMATopologyFilter``, after ours, as its module
    asks); ``AcceleratorStrandingWeigher``, ``AcceleratorSpreadWeigher``.
    The flavor says ``resources:PGPU=1`` and
    ``accelerator:numa_policy=required`` (the locality Nova's ``legacy`` PCI
    NUMA policy gives); hosts report their accelerator summary in
    ``stats`` and their NUMA cells' node markers, and carry Placement's
    candidates for one ``PGPU:1`` group over the per-NUMA-node providers.
    Hosts Placement would not return (no free GPU) are still handed to the
    filters, with no candidate: the filters see the whole fleet, as in the
    other pipelines.

and, to show where the time goes, three diagnostic rows: ``ComputeFilter``
with no weigher; ours without a NUMA topology filter; ours with Nova's
``NUMATopologyFilter`` (before ``AcceleratorNUMAFilter``, the order that
filter asks for with Nova's) instead of ours.

A request is ``SchedulerManager._get_sorted_hosts`` itself (filtering with
``HostFilterHandler``, weighing with ``HostWeightHandler``, the pick among
the best), called on a host manager holding the pipeline's filters and
weighers, over real ``HostState`` objects, with a ``RequestSpec`` of its
own (filters may keep what they read for the rest of a request).  Each
host's candidates are reset before a request, outside the timing; the copy
``SchedulerManager._schedule`` makes of them is timed apart.  The host
states live as long as the run, whereas Nova 34's ``HostManager`` builds
new ones for each request (``_get_host_states``, untimed here): what a
filter caches on a host state object (``AcceleratorNUMAFilter``'s cell
capacities) stays warm here from one request to the next; the first
(cold) request of each pipeline is reported apart.  Pipelines
take turns within each round, so that drift of the machine's load hits
them alike.

Every request is also checked: the hosts that pass are exactly the hosts
that can take the server (:func:`~cyborg_nova.tests.bench.hosts.can_fit`),
in ours and in Nova's pipeline alike, and none without GPUs; in ours every
candidate left uses a GPU on a NUMA node the guest fits, and for a guest
with dedicated CPUs the host's NUMA limits carry the marker of the first
candidate's node, so Nova's claim lands the guest there (checked with Nova's
own fitting on the first hosts of each result).

Run ``python -m cyborg_nova.tests.bench [--quick] scheduler`` or
``python -m cyborg_nova.tests.bench.bench_scheduler --help``.
"""

import argparse
import collections
import copy
import dataclasses
import gc
import logging
import os
import platform
import statistics
import sys
import time
import uuid

from cyborg_nova.tests.bench import hosts as bench_hosts

DEFAULT_SIZES = (1000, 10000)
QUICK_ARGV = ('--quick',)
QUICK_SIZES = (100, 500)

BASE_WEIGHERS = ('nova.scheduler.weights.ram.RAMWeigher',
                 'nova.scheduler.weights.cpu.CPUWeigher')
AVAILABLE_FILTERS = ('nova.scheduler.filters.all_filters',
                     'cyborg_nova.filters.all_filters')


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    name: str
    label: str
    fleet: str               # 'nova' or 'ours': which host states it reads
    filters: tuple
    weighers: tuple
    diagnostic: bool = False


FLOOR = PipelineSpec(
    'floor', 'ComputeFilter (floor)', 'nova', ('ComputeFilter',),
    BASE_WEIGHERS)
NOVA = PipelineSpec(
    'nova', 'Nova GPU: Compute+PciPassthrough+NUMATopology, PCIWeigher',
    'nova', ('ComputeFilter', 'PciPassthroughFilter', 'NUMATopologyFilter'),
    BASE_WEIGHERS + ('nova.scheduler.weights.pci.PCIWeigher',))
OURS = PipelineSpec(
    'ours', 'ours: Compute+AcceleratorNUMA+AcceleratorAwareNUMATopology, '
    'Stranding+Spread',
    'ours', ('ComputeFilter', 'AcceleratorNUMAFilter',
             'AcceleratorAwareNUMATopologyFilter'),
    BASE_WEIGHERS + (
        'cyborg_nova.weighers.stranding.AcceleratorStrandingWeigher',
        'cyborg_nova.weighers.spread.AcceleratorSpreadWeigher'))
BARE = PipelineSpec(
    'bare', '(diag) ComputeFilter, no weigher', 'nova', ('ComputeFilter',),
    (), diagnostic=True)
OURS_NO_NTF = PipelineSpec(
    'ours-no-ntf', '(diag) ours without a NUMA topology filter', 'ours',
    ('ComputeFilter', 'AcceleratorNUMAFilter'), OURS.weighers,
    diagnostic=True)
OURS_NOVA_NTF = PipelineSpec(
    'ours-nova-ntf', '(diag) ours with Nova\'s NUMATopologyFilter', 'ours',
    ('ComputeFilter', 'NUMATopologyFilter', 'AcceleratorNUMAFilter'),
    OURS.weighers, diagnostic=True)
PIPELINES = (FLOOR, NOVA, OURS, BARE, OURS_NO_NTF, OURS_NOVA_NTF)
#: Hosts of each result whose claim is replayed with Nova's own fitting.
CLAIMS_CHECKED = 5


# -- configuration ------------------------------------------------------------

def config_overrides():
    """``[(name, value, group)]`` the bench sets on Nova's CONF.

    Heartbeats count as fresh for a day (the bench outlives the default
    60 s ``service_down_time``); the GPUs are allowed and aliased for
    Nova's PCI passthrough; both projects' filters are available.
    """
    return [
        ('service_down_time', 86400, None),
        ('device_spec', [bench_hosts.nova_device_spec()], 'pci'),
        ('alias', [bench_hosts.nova_alias()], 'pci'),
        ('available_filters', list(AVAILABLE_FILTERS), 'filter_scheduler'),
        ('host_subset_size', 1, 'filter_scheduler'),
        ('shuffle_best_same_weighed_hosts', False, 'filter_scheduler'),
    ]


def configure(set_override=None):
    """Prepare Nova for the bench in this process: objects registered, our
    options registered, :func:`config_overrides` applied through
    *set_override(name, value, group)* (default: ``CONF.set_override``)."""
    import nova.conf
    from nova import objects
    from nova.pci import request as pci_request

    from cyborg_nova import conf as cn_conf

    objects.register_all()
    conf = nova.conf.CONF
    cn_conf.register_opts(conf)
    if set_override is None:
        set_override = conf.set_override
    for name, value, group in config_overrides():
        set_override(name, value, group)
    pci_request.get_alias_from_config.cache_clear()


# -- requests -----------------------------------------------------------------

def _flavor(extra_specs, request):
    from nova import objects

    return objects.Flavor(
        id=1, flavorid='gpu.%s' % request.cpu_policy,
        name='gpu.%s' % request.cpu_policy, vcpus=request.vcpus,
        memory_mb=request.memory_mb, root_gb=request.root_gb,
        ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0,
        disabled=False, is_public=True, description=None,
        extra_specs=dict(extra_specs))


def _request_spec(flavor, pci_requests):
    """A ``RequestSpec`` as the conductor hands it to the scheduler."""
    from nova import context as nova_context
    from nova import objects
    from nova.virt import hardware

    image = objects.ImageMeta.from_dict({'properties': {}})
    # is_admin given: no policy engine (nor its config files) to consult.
    ctxt = nova_context.RequestContext('bench-user', 'bench-project',
                                       is_admin=False)
    return objects.RequestSpec.from_components(
        ctxt, str(uuid.uuid4()), image, flavor,
        hardware.numa_get_constraints(flavor, image), pci_requests, {},
        None, 'nova')


def nova_spec(request):
    """Nova's way: ``pci_passthrough:alias``, PCI requests from the alias."""
    from nova.pci import request as pci_request

    specs = {'pci_passthrough:alias': '%s:%d' % (bench_hosts.PCI_ALIAS,
                                                 request.gpus)}
    if request.dedicated:
        specs['hw:cpu_policy'] = 'dedicated'
    flavor = _flavor(specs, request)
    return _request_spec(flavor, pci_request.get_pci_requests_from_flavor(
        flavor))


def ours_spec(request):
    """Ours: a ``PGPU`` resource request, locality required."""
    from nova import objects

    specs = {'resources:PGPU': str(request.gpus),
             'accelerator:numa_policy': 'required'}
    if request.dedicated:
        specs['hw:cpu_policy'] = 'dedicated'
    return _request_spec(_flavor(specs, request),
                         objects.InstancePCIRequests(requests=[]))


# -- pipelines ----------------------------------------------------------------

class Pipeline:
    """A scheduler's filters and weighers, run as the scheduler runs them.

    ``host_manager`` is a ``HostManager`` holding just what
    ``get_filtered_hosts``/``get_weighed_hosts`` read (the rest of its
    start-up talks to databases); filters are chosen by class name from
    ``[filter_scheduler] available_filters`` as ``enabled_filters`` would
    choose them.
    """

    def __init__(self, spec):
        import nova.conf
        from nova.scheduler import filters
        from nova.scheduler import host_manager
        from nova.scheduler import weights

        conf = nova.conf.CONF
        self.spec = spec
        hm = host_manager.HostManager.__new__(host_manager.HostManager)
        hm.filter_handler = filters.HostFilterHandler()
        classes = hm.filter_handler.get_matching_classes(
            conf.filter_scheduler.available_filters)
        hm.filter_cls_map = {cls.__name__: cls for cls in classes}
        hm.filter_obj_map = {}
        hm.enabled_filters = hm._choose_host_filters(list(spec.filters))
        hm.weight_handler = weights.HostWeightHandler()
        hm.weighers = [cls() for cls in hm.weight_handler.
                       get_matching_classes(list(spec.weighers))]
        self.host_manager = hm

    def sorted_hosts(self, spec_obj, host_states):
        """``SchedulerManager._get_sorted_hosts``, Nova's own code."""
        from nova.scheduler import manager

        return manager.SchedulerManager._get_sorted_hosts(
            self, spec_obj, host_states, 0)


# -- fleets -------------------------------------------------------------------

class Fleet:
    """Host states for both kinds of pipeline, and their candidates."""

    def __init__(self, size):
        from oslo_utils import timeutils

        now = timeutils.utcnow()
        self.profiles = bench_hosts.fleet(size)
        t0 = time.perf_counter()
        self.states = {
            'nova': [bench_hosts.nova_host_state(p, now)
                     for p in self.profiles],
            'ours': [bench_hosts.ours_host_state(p, now)
                     for p in self.profiles],
        }
        self.build_s = time.perf_counter() - t0
        self.by_name = {p.name: p for p in self.profiles}
        self._candidates = {}
        # provider uuid -> NUMA node, to check the candidates left.
        self.provider_node = {}
        for p in self.profiles:
            for g in bench_hosts.locality_groups(p):
                self.provider_node[g.provider_uuid(p.uuid)] = (
                    g.key.numa_node)

    def candidates(self, kind, request):
        key = (kind, request)
        if key not in self._candidates:
            make = (bench_hosts.nova_candidates if kind == 'nova'
                    else bench_hosts.ours_candidates)
            self._candidates[key] = [make(p, request)
                                     for p in self.profiles]
        return self._candidates[key]

    def prepare(self, kind, request, size):
        """The first *size* host states of *kind*, with fresh candidates
        and no limits left by a previous request (untimed)."""
        states = self.states[kind][:size]
        for host, cands in zip(states, self.candidates(kind, request)):
            host.allocation_candidates = list(cands)
            host.limits = {}
        return states


def candidate_copy_ms(fleet, kind, request, size):
    """What ``SchedulerManager._schedule`` adds per request before the
    filters: a ``copy.deepcopy`` of each host's candidates."""
    cands = fleet.candidates(kind, request)[:size]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for c in cands:
            copy.deepcopy(c)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


# -- correctness --------------------------------------------------------------

def expected_hosts(profiles, request, pipeline):
    if pipeline.name in ('floor', 'bare'):
        return {p.name for p in profiles if not p.disabled}
    return {p.name for p in profiles if bench_hosts.can_fit(p, request)}


def check(fleet, profiles, request, pipeline, result):
    """Problems with one request's result (empty when right)."""
    problems = []
    passed = {h.host for h in result}
    expected = expected_hosts(profiles, request, pipeline)
    if passed != expected:
        extra = sorted(passed - expected)
        missing = sorted(expected - passed)
        problems.append(
            '%s %s: %d hosts passed, %d expected; wrongly passed %s; '
            'wrongly rejected %s' % (
                pipeline.name, request.cpu_policy, len(passed),
                len(expected),
                _few(extra, fleet), _few(missing, fleet)))
    if pipeline.name not in ('floor', 'bare'):
        cpu_only = [h for h in passed if not fleet.by_name[h].has_gpus]
        if cpu_only:
            problems.append('%s %s: hosts without GPUs passed: %s' % (
                pipeline.name, request.cpu_policy, _few(cpu_only, fleet)))
    if pipeline.fleet == 'ours':
        for host in result:
            profile = fleet.by_name[host.host]
            good = {n for n in range(bench_hosts.NODES)
                    if profile.gpus_free(n) >= request.gpus and
                    (not request.dedicated or
                     profile.pcpus_free(n) >= request.vcpus)}
            if not host.allocation_candidates:
                problems.append('%s %s: %s passed with no candidate left' % (
                    pipeline.name, request.cpu_policy, host.host))
                continue
            for cand in host.allocation_candidates:
                nodes = {fleet.provider_node[rp]
                         for rp in cand['allocations']
                         if rp in fleet.provider_node}
                if not nodes or not nodes <= good:
                    problems.append(
                        '%s %s: %s (%s) kept a candidate on node(s) %s; '
                        'the guest fits on %s' % (
                            pipeline.name, request.cpu_policy, host.host,
                            profile.variant, sorted(nodes), sorted(good)))
                    break
        if request.dedicated:
            problems += _check_claims(fleet, request, pipeline, result)
    return problems


def _check_claims(fleet, request, pipeline, result):
    """For a guest with dedicated CPUs, the host's NUMA limits must carry
    the markers of its first candidate's nodes, and nothing else; on the
    first hosts, Nova's own fitting with those limits (what the claim does)
    must land the guest there."""
    from nova.virt import hardware

    from cyborg_nova.policy import numa_affinity

    problems = []
    for i, host in enumerate(result):
        if not host.allocation_candidates:
            continue        # reported above
        first = host.allocation_candidates[0]
        nodes = {fleet.provider_node[rp] for rp in first['allocations']
                 if rp in fleet.provider_node}
        limits = host.limits.get('numa_topology')
        marked = set()
        if limits is not None and 'network_metadata' in limits:
            marked = set(limits.network_metadata.physnets)
        wanted = {numa_affinity.marker(n) for n in nodes}
        if marked != wanted:
            problems.append(
                '%s %s: %s: the NUMA limits carry %s, not the markers of its '
                'first candidate\'s node(s) %s: the claim may not be '
                'NUMA-local' % (pipeline.name, request.cpu_policy, host.host,
                                sorted(marked), sorted(nodes)))
            continue
        if i < CLAIMS_CHECKED:
            fitted = hardware.numa_fit_instance_to_host(
                host.numa_topology, _spec_topology(request), limits=limits,
                provider_mapping=first['mappings'])
            cells = None if fitted is None else {c.id for c in fitted.cells}
            if cells != nodes:
                problems.append(
                    '%s %s: %s: Nova\'s claim would place the guest on '
                    'node(s) %s, its first candidate\'s GPU is on %s' % (
                        pipeline.name, request.cpu_policy, host.host,
                        None if cells is None else sorted(cells),
                        sorted(nodes)))
    return problems


def _spec_topology(request):
    """A fresh copy of the request's guest NUMA topology (the fitting
    writes into it)."""
    return ours_spec(request).numa_topology


def _few(names, fleet, limit=4):
    shown = ['%s(%s)' % (n, fleet.by_name[n].variant) for n in names[:limit]]
    more = len(names) - limit
    return '[%s%s]' % (', '.join(shown), ', +%d' % more if more > 0 else '')


def check_fleet(size, requests=None):
    """Run every pipeline once per request on a fleet of *size* hosts and
    return ``(passed, problems)``: the host names each pipeline passed,
    ``{(pipeline, cpu_policy): set}``, and what was wrong.  For tests."""
    requests = requests or (bench_hosts.Request(dedicated=False),
                            bench_hosts.Request(dedicated=True))
    fleet = Fleet(size)
    pipelines = [Pipeline(p) for p in PIPELINES]
    passed, problems = {}, []
    for request in requests:
        specs = {'nova': nova_spec(request), 'ours': ours_spec(request)}
        for pl in pipelines:
            states = fleet.prepare(pl.spec.fleet, request, size)
            result = pl.sorted_hosts(specs[pl.spec.fleet], states)
            passed[(pl.spec.name, request.cpu_policy)] = {
                h.host for h in result}
            problems += check(fleet, fleet.profiles[:size], request,
                              pl.spec, result)
    return passed, problems


# -- timing -------------------------------------------------------------------

@dataclasses.dataclass
class Cell:
    pipeline: PipelineSpec
    size: int
    policy: str
    times_ms: list = dataclasses.field(default_factory=list)
    cold_ms: float = None
    first_choice: str = ''
    copy_ms: float = 0.0
    returned: list = dataclasses.field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.times_ms)


def run_cell_group(fleet, size, request, pipelines, repeats, budget_s,
                   problems, log):
    """Time every pipeline on one fleet size and request, in rounds.

    A pipeline with caches (ours) gets one cold request first, reported
    apart.  A pipeline stops repeating once it has spent *budget_s* (it
    always runs at least once).
    """
    make_spec = {'nova': nova_spec, 'ours': ours_spec}
    profiles = fleet.profiles[:size]
    cells = {pl.spec.name: Cell(pl.spec, size, request.cpu_policy)
             for pl in pipelines}
    spent = collections.Counter()

    def one(pl):
        states = fleet.prepare(pl.spec.fleet, request, size)
        # A RequestSpec of its own, as each request to the scheduler has.
        spec_obj = make_spec[pl.spec.fleet](request)
        gc.collect()
        t0 = time.perf_counter()
        result = pl.sorted_hosts(spec_obj, states)
        dt = time.perf_counter() - t0
        problems.extend(check(fleet, profiles, request, pl.spec, result))
        spent[pl.spec.name] += dt
        cell = cells[pl.spec.name]
        if result:
            cell.first_choice = fleet.by_name[result[0].host].variant
        return dt * 1000.0

    for pl in pipelines:
        if pl.spec.fleet == 'ours':
            cells[pl.spec.name].cold_ms = one(pl)
    for _ in range(repeats):
        for pl in pipelines:
            cell = cells[pl.spec.name]
            if cell.times_ms and spent[pl.spec.name] >= budget_s:
                continue
            cell.times_ms.append(one(pl))
        log('.')
    for pl in pipelines:
        cell = cells[pl.spec.name]
        cell.copy_ms = candidate_copy_ms(fleet, pl.spec.fleet, request, size)
        cell.returned = fleet.candidates(pl.spec.fleet, request)[:size]
    return [cells[pl.spec.name] for pl in pipelines]


# -- report -------------------------------------------------------------------

def format_table(cells):
    by_key = {(c.pipeline.name, c.size, c.policy): c for c in cells}
    head = ('pipeline', 'hosts', 'cpus', 'median ms', 'min-max ms (N)',
            'us/host', 'x floor', 'ours vs nova')
    rows = []
    for c in cells:
        floor = by_key[('floor', c.size, c.policy)]
        nova = by_key.get(('nova', c.size, c.policy))
        speedup = ''
        if c.pipeline.fleet == 'ours' and nova is not None:
            speedup = '%.0fx faster' % (nova.median / c.median)
        rows.append((
            c.pipeline.label, '%d' % c.size, c.policy,
            _ms(c.median),
            '%s-%s (%d)' % (_ms(min(c.times_ms)), _ms(max(c.times_ms)),
                            len(c.times_ms)),
            '%.1f' % (c.median * 1000.0 / c.size),
            '%.2f' % (c.median / floor.median),
            speedup))
    widths = [max(len(str(r[i])) for r in rows + [head])
              for i in range(len(head))]
    lines = []
    for i, r in enumerate([head] + rows):
        lines.append('  '.join(
            str(v).ljust(w) if j in (0, 2) else str(v).rjust(w)
            for j, (v, w) in enumerate(zip(r, widths))).rstrip())
        if i == 0:
            lines.append('  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _ms(value):
    if value >= 100:
        return '%.0f' % value
    if value >= 10:
        return '%.1f' % value
    return '%.2f' % value


def summary(cells):
    """The goal's numbers per fleet size and CPU policy: ours (and, to
    show where its time goes, ours without a NUMA topology filter and ours
    with Nova's) against the floor, the bare ComputeFilter and Nova's GPU
    pipeline."""
    by_key = {(c.pipeline.name, c.size, c.policy): c for c in cells}
    lines = []
    for c in cells:
        if c.pipeline.fleet != 'ours':
            continue
        floor = by_key[('floor', c.size, c.policy)]
        nova = by_key[('nova', c.size, c.policy)]
        bare = by_key.get(('bare', c.size, c.policy))
        x_floor = c.median / floor.median
        speed = nova.median / c.median
        if c.pipeline.diagnostic:
            goals = ('', '')
        else:
            goals = (' (goal <= 2x: %s)' % _met(x_floor <= 2),
                     ' (goal >= 50x: %s)' % _met(speed >= 50))
        lines.append(
            '%-11s %6d hosts, %-10s %5.1fx floor%s, %s%5.1fx faster than '
            'Nova%s' % (
                c.pipeline.name, c.size, c.policy + ':', x_floor, goals[0],
                '' if bare is None else
                '%.1fx bare ComputeFilter, ' % (c.median / bare.median),
                speed, goals[1]))
    return '\n'.join(lines)


def _met(ok):
    return 'met' if ok else 'NOT met'


def notes(cells):
    lines = []
    seen = set()
    for c in cells:
        if c.cold_ms is not None:
            lines.append(
                '  %s, %d hosts, %s: first (cold-cache) request %s ms, '
                'not in the median' % (c.pipeline.name, c.size, c.policy,
                                       _ms(c.cold_ms)))
    for c in cells:
        key = (c.pipeline.fleet, c.size, c.policy)
        if key in seen:
            continue
        seen.add(key)
        lines.append(
            '  candidates copied by _schedule before filtering (untimed '
            'above): %s fleet, %d hosts, %s: %s ms' % (
                c.pipeline.fleet, c.size, c.policy, _ms(c.copy_ms)))
    for c in cells:
        if c.pipeline.name != 'ours':
            continue
        returned = sum(1 for cands in c.returned if cands)
        lines.append(
            '  ours, %d hosts, %s: Placement would hand the scheduler only '
            'the %d hosts with a candidate; all %d were filtered above' % (
                c.size, c.policy, returned, c.size))
    for c in cells:
        if not c.pipeline.diagnostic and c.first_choice:
            lines.append('  %s, %d hosts, %s: chose a %s host' % (
                c.pipeline.name, c.size, c.policy, c.first_choice))
    return '\n'.join(lines)


# -- main ---------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m cyborg_nova.tests.bench.bench_scheduler',
        description='Scheduler cost per request: ComputeFilter alone, '
                    'Nova\'s GPU pipeline and cyborg-nova\'s, on the same '
                    'fleets; checks which hosts pass.')
    parser.add_argument('--quick', action='store_true',
                        help='small fleets, few repeats (under a minute)')
    parser.add_argument('--sizes', type=lambda s: tuple(
        int(x) for x in s.split(',')),
        help='fleet sizes, comma-separated (default %s; quick %s)' % (
            ','.join(map(str, DEFAULT_SIZES)),
            ','.join(map(str, QUICK_SIZES))))
    parser.add_argument('--repeats', type=int,
                        help='timed requests per pipeline at most '
                             '(default 7; quick 3)')
    parser.add_argument('--budget', type=float,
                        help='seconds a pipeline may spend per fleet size '
                             'and CPU policy before it stops repeating; it '
                             'runs at least once (default 30; quick 2)')
    parser.add_argument('--log-level', default='WARNING',
                        choices=('DEBUG', 'INFO', 'WARNING'),
                        help='level of Nova\'s and our loggers, written to '
                             '/dev/null (default WARNING: nothing formatted; '
                             'a production scheduler logs at INFO, where '
                             'Nova\'s NUMA fitting logs a line per host)')
    parser.add_argument('--no-diagnostics', action='store_true',
                        help='leave out the diagnostic pipelines')
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    if args.repeats is None:
        args.repeats = 3 if args.quick else 7
    if args.budget is None:
        args.budget = 2.0 if args.quick else 30.0
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.perf_counter()

    def log(text):
        sys.stderr.write(text)
        sys.stderr.flush()

    import nova.conf
    nova.conf.CONF([], project='nova', default_config_files=[],
                   default_config_dirs=[])
    configure()
    logging.basicConfig(stream=open(os.devnull, 'w'),
                        level=getattr(logging, args.log_level))

    specs = [p for p in PIPELINES if not (args.no_diagnostics and
                                          p.diagnostic)]
    pipelines = [Pipeline(p) for p in specs]
    log('building %d hosts twice (Nova PCI stats; our stats) ... '
        % max(args.sizes))
    fleet = Fleet(max(args.sizes))
    log('%.1f s\n' % fleet.build_s)
    # The fleet lives as long as the run, as a scheduler's host states do.
    # Frozen, the collector no longer walks its millions of objects on every
    # full collection (seconds each), which would swamp the timings.
    gc.collect()
    gc.freeze()

    cells, problems = [], []
    for size in sorted(args.sizes):
        for request in (bench_hosts.Request(dedicated=False),
                        bench_hosts.Request(dedicated=True)):
            log('timing %d hosts, %s CPUs ' % (size, request.cpu_policy))
            t0 = time.perf_counter()
            cells += run_cell_group(fleet, size, request, pipelines,
                                    args.repeats, args.budget, problems, log)
            log(' %.0f s\n' % (time.perf_counter() - t0))

    print()
    print('Scheduler cost per request (SchedulerManager._get_sorted_hosts: '
          'filters, weighers, pick)')
    print('Python %s, nova %s, %s, %d CPUs, load average %s' % (
        platform.python_version(), _nova_version(), platform.machine(),
        os.cpu_count(), ' '.join('%.1f' % x for x in os.getloadavg())))
    print('Hosts: half with %d GPUs over %d NUMA nodes, half without; %d '
          'CPUs each (%d shared + %d dedicated per node, SMT pairs); '
          'server: %d vCPUs, %d MiB, 1 GPU' % (
              bench_hosts.NODES * bench_hosts.GPUS_PER_NODE,
              bench_hosts.NODES,
              bench_hosts.NODES * 2 * bench_hosts.CORES_PER_NODE,
              bench_hosts.CORES_PER_NODE, bench_hosts.CORES_PER_NODE,
              bench_hosts.Request(False).vcpus,
              bench_hosts.Request(False).memory_mb))
    print('Every pipeline also runs the RAM and CPU weighers. Nova: legacy '
          'PCI tracking (no PCI in Placement). Log level %s.'
          % args.log_level)
    print()
    print(format_table(cells))
    print()
    print(summary(cells))
    print()
    print('Notes:')
    print(notes(cells))
    print()
    if problems:
        print('CORRECTNESS: %d problem(s)' % len(problems))
        for p in sorted(set(problems))[:20]:
            print('  ' + p)
    else:
        checked = sum(len(c.times_ms) + (c.cold_ms is not None)
                      for c in cells)
        print('Correctness: all %d requests passed exactly the hosts that '
              'can take the server (ours and Nova alike; no host without '
              'GPUs; ours kept only NUMA-local candidates, and for dedicated '
              'CPUs its NUMA limits put the claim on the first candidate\'s '
              'node).' % checked)
    print('Total %.0f s (fleet build %.0f s).' % (
        time.perf_counter() - t_start, fleet.build_s))
    return 1 if problems else 0


def _nova_version():
    try:
        from importlib import metadata
        return metadata.version('nova')
    except Exception:   # noqa: BLE001 - only for the header
        return '?'


if __name__ == '__main__':
    sys.exit(main())
