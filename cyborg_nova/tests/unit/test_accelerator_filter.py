"""The scheduler filter: ``cyborg_nova.filters.accelerator_filter``.

Hosts are Nova's ``FakeHostState`` with real ``NUMATopology`` objects and
real stats, encoded from :class:`~cyborg_nova.device.Device` objects the way
a compute host reports them; requests are real ``RequestSpec`` objects.
The helpers at the top are shared with the weigher tests.
"""

import copy
from unittest import mock

from nova import objects
from nova.scheduler import filters as nova_filters
from nova import test
from nova.tests.unit.scheduler import fakes
import testscenarios

from cyborg_nova import conf as cn_conf
from cyborg_nova import device
from cyborg_nova import filters
from cyborg_nova.filters import accelerator_filter
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import request

ROOT = '5c1b2f7e-0a4b-4a8e-9a47-1d2b3c4d5e6f'
GPU_ON = {0: '0000:03:00.0', 1: '0000:83:00.0'}


# -- helpers (also used by the weigher tests) -------------------------------

def gpu(address, numa_node, healthy=True, load=None, resource_class='PGPU',
        product='2330'):
    """One GPU as a driver reports it."""
    return device.Device(
        address=address, vendor_id='10de', product_id=product,
        class_id='030200', numa_node=numa_node, resource_class=resource_class,
        health=(device.Health.ok() if healthy
                else device.Health.bad('XID 79: fallen off the bus')),
        utilization=(None if load is None
                     else device.Utilization(compute_percent=load)))


def stats_of(devices, in_use=()):
    """The stats dict a compute host with *devices* reports."""
    return host_stats.encode(inventory.locality_groups(devices, in_use))


def suffix_of(dev):
    return inventory.group_key(dev).suffix


def rp_of(dev, root=ROOT):
    """The Placement provider uuid of *dev*'s locality group."""
    return inventory.provider_uuid(root, suffix_of(dev))


def candidate(*providers, root=ROOT):
    """An allocation candidate: the root provider's VCPU and memory plus
    ``(provider uuid, resources)`` pairs."""
    allocations = {root: {'resources': {'VCPU': 4, 'MEMORY_MB': 4096}}}
    for rp_uuid, resources in providers:
        allocations[rp_uuid] = {'resources': dict(resources)}
    return {'allocations': allocations,
            'mappings': {'': sorted(allocations)}}


def cell(node, cpus=(), pcpus=(), pinned=(), memory=16384, memory_usage=0):
    return objects.NUMACell(
        id=node, cpuset=set(cpus), pcpuset=set(pcpus),
        pinned_cpus=set(pinned), memory=memory, memory_usage=memory_usage,
        cpu_usage=0, siblings=[{c} for c in sorted(set(cpus) | set(pcpus))],
        mempages=[],
        network_metadata=objects.NetworkMetadata(
            physnets={numa_affinity.marker(node)}, tunneled=False))


def two_nodes(node1_pinned=(), node1_memory_usage=0):
    """Two NUMA nodes: 4 shared and 4 dedicated CPUs, 16 GiB each."""
    return objects.NUMATopology(cells=[
        cell(0, cpus=range(0, 4), pcpus=range(4, 8)),
        cell(1, cpus=range(8, 12), pcpus=range(12, 16), pinned=node1_pinned,
             memory_usage=node1_memory_usage),
    ])


_TWO_NODES = object()


def make_host(name='host1', devices=(), in_use=(), candidates=None,
              numa=_TWO_NODES, limits=None, aggregates=(), uuid=ROOT, **extra):
    if numa is _TWO_NODES:
        numa = two_nodes()
    attrs = dict(uuid=uuid, stats=stats_of(devices, in_use) if devices
                 else {}, numa_topology=numa,
                 allocation_candidates=list(candidates or []),
                 limits=dict(limits or {}), aggregates=list(aggregates),
                 cpu_allocation_ratio=4.0, ram_allocation_ratio=1.5)
    attrs.update(extra)
    return fakes.FakeHostState(name, name, attrs)


def make_spec(extra_specs=None, vcpus=4, memory_mb=4096, dedicated=False,
              numa_cells=1, network_metadata=None, name='flavor'):
    flavor = objects.Flavor(name=name, vcpus=vcpus, memory_mb=memory_mb,
                            root_gb=10, ephemeral_gb=0, swap=0,
                            extra_specs=dict(extra_specs or {}))
    numa_topology = None
    if dedicated or numa_cells > 1:
        per_cell = vcpus // numa_cells
        cells = []
        for i in range(numa_cells):
            cpus = set(range(i * per_cell, (i + 1) * per_cell))
            cells.append(objects.InstanceNUMACell(
                id=i, memory=memory_mb // numa_cells,
                cpuset=set() if dedicated else cpus,
                pcpuset=cpus if dedicated else set(),
                cpu_policy='dedicated' if dedicated else 'shared'))
        numa_topology = objects.InstanceNUMATopology(cells=cells)
    spec = objects.RequestSpec(flavor=flavor, numa_topology=numa_topology,
                               scheduler_hints={})
    if network_metadata is not None:
        spec.network_metadata = network_metadata
    return spec


GPU0 = gpu(GPU_ON[0], 0)
GPU1 = gpu(GPU_ON[1], 1)
ONE_GPU = {'resources:PGPU': '1'}


def policy(name):
    return dict(ONE_GPU, **{'accelerator:numa_policy': name})


def both_nodes():
    """A GPU on each node; Placement offers node 0's first."""
    return dict(devices=[GPU0, GPU1],
                candidates=[candidate((rp_of(GPU0), {'PGPU': 1})),
                            candidate((rp_of(GPU1), {'PGPU': 1}))])


def nodes_of(host):
    """The device nodes of each remaining candidate, in order."""
    by_rp = {rp_of(GPU0): 0, rp_of(GPU1): 1}
    return [sorted(by_rp[rp] for rp in c['allocations'] if rp in by_rp)
            for c in host.allocation_candidates]


class _Base(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.filt = accelerator_filter.AcceleratorNUMAFilter()

    def passes(self, host, spec):
        return self.filt._filter_one(host, spec)


# -- the cases --------------------------------------------------------------

class PolicyTest(testscenarios.WithScenarios, _Base):
    """Which hosts pass and which candidates stay, in which order."""

    scenarios = [
        ('no accelerator requested -> passes with candidates untouched',
         dict(specs={'hw:cpu_policy': 'dedicated'}, host=both_nodes(),
              expect=True, nodes=[[0], [1]])),
        ('host reports no accelerators -> host rejected',
         dict(specs=ONE_GPU,
              host=dict(candidates=[candidate()]),
              expect=False)),
        ('no allocation candidate left -> host rejected',
         dict(specs=ONE_GPU, host=dict(devices=[GPU0], candidates=[]),
              expect=False)),
        ('unknown provider -> candidate dropped',
         dict(specs=policy('none'),
              host=dict(devices=[GPU0, GPU1], candidates=[
                  candidate(('0d7c0c1e-stale-provider', {'PGPU': 1})),
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=True, nodes=[[1]])),
        ('provider of another host -> candidate dropped',
         dict(specs=policy('none'),
              host=dict(devices=[GPU0], candidates=[
                  candidate((rp_of(GPU0, root='other-root'),
                             {'PGPU': 1}))]),
              expect=False)),
        ('unhealthy group -> candidate dropped',
         dict(specs=policy('none'),
              host=dict(devices=[gpu(GPU_ON[0], 0, healthy=False), GPU1],
                        candidates=both_nodes()['candidates']),
              expect=True, nodes=[[1]])),
        ('group with fewer healthy devices than allocated -> dropped',
         dict(specs={'resources:PGPU': '2', 'accelerator:numa_policy': 'none'},
              host=dict(devices=[gpu('0000:03:00.0', 0),
                                 gpu('0000:04:00.0', 0, healthy=False)],
                        candidates=[candidate((rp_of(GPU0), {'PGPU': 2}))]),
              expect=False)),
        ('only unhealthy groups -> host rejected',
         dict(specs=policy('none'),
              host=dict(devices=[gpu(GPU_ON[0], 0, healthy=False)],
                        candidates=[candidate((rp_of(GPU0), {'PGPU': 1}))]),
              expect=False)),
        ('none policy -> candidates kept in Placement order',
         dict(specs=policy('none'),
              host=dict(both_nodes(), numa=two_nodes(node1_pinned=())),
              spec=dict(vcpus=16), expect=True, nodes=[[0], [1]])),
        ('required policy, shared guest fits the gpu node -> kept',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], candidates=[
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=True, nodes=[[1]])),
        ('required policy, shared guest has more vCPUs than the gpu node '
         'has CPUs -> host rejected',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], candidates=[
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              spec=dict(vcpus=6), expect=False)),
        ('required policy, gpu node has no free memory -> host rejected',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], numa=two_nodes(
                  node1_memory_usage=14336), candidates=[
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=False)),
        ('required policy, gpu node has no free pcpus -> host rejected',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], numa=two_nodes(
                  node1_pinned=range(12, 16)), candidates=[
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              spec=dict(dedicated=True), expect=False)),
        ('required policy, shared guest on a node with pinned cpus -> kept',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], numa=two_nodes(
                  node1_pinned=range(12, 16)), candidates=[
                  candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=True, nodes=[[1]])),
        ('required policy -> only the aligned candidate kept',
         dict(specs=policy('required'),
              host=dict(both_nodes(), numa=two_nodes(
                  node1_pinned=range(12, 16))),
              spec=dict(dedicated=True), expect=True, nodes=[[0]])),
        ('required policy, device node unknown -> host rejected',
         dict(specs=policy('required'),
              host=dict(devices=[gpu('0000:03:00.0', None)], candidates=[
                  candidate((inventory.provider_uuid(
                      ROOT, suffix_of(gpu('0000:03:00.0', None))),
                      {'PGPU': 1}))]),
              expect=False)),
        ('required policy, host without NUMA topology -> host rejected',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], numa=None,
                        candidates=[candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=False)),
        ('required policy, gpu node not in the host topology -> rejected',
         dict(specs=policy('required'),
              host=dict(devices=[GPU1], numa=objects.NUMATopology(
                  cells=[cell(0, cpus=range(8))]),
                  candidates=[candidate((rp_of(GPU1), {'PGPU': 1}))]),
              expect=False)),
        ('preferred policy, host without NUMA topology -> kept unaligned',
         dict(specs=policy('preferred'),
              host=dict(both_nodes(), numa=None),
              expect=True, nodes=[[0], [1]])),
        ('required policy, one-cell guest with devices on two nodes -> '
         'host rejected',
         dict(specs={'resources1:PGPU': '1', 'resources2:PGPU': '1',
                     'accelerator:numa_policy': 'required'},
              host=dict(devices=[GPU0, GPU1], candidates=[
                  candidate((rp_of(GPU0), {'PGPU': 1}),
                            (rp_of(GPU1), {'PGPU': 1}))]),
              spec=dict(dedicated=True), expect=False)),
        ('required policy, two-cell guest with devices on two nodes -> kept',
         dict(specs={'resources1:PGPU': '1', 'resources2:PGPU': '1',
                     'accelerator:numa_policy': 'required'},
              host=dict(devices=[GPU0, GPU1], candidates=[
                  candidate((rp_of(GPU0), {'PGPU': 1}),
                            (rp_of(GPU1), {'PGPU': 1}))]),
              spec=dict(dedicated=True, numa_cells=2, vcpus=8),
              expect=True, nodes=[[0, 1]])),
        ('preferred policy -> aligned candidate first',
         dict(specs=policy('preferred'),
              host=dict(both_nodes(), numa=two_nodes(
                  node1_pinned=range(12, 16))),
              spec=dict(dedicated=True), expect=True, nodes=[[0], [1]])),
        ('preferred policy, later aligned candidate -> moved first',
         dict(specs=policy('preferred'),
              host=dict(devices=[GPU0, GPU1],
                        numa=objects.NUMATopology(cells=[
                            cell(0, cpus=range(4), memory_usage=16384),
                            cell(1, cpus=range(8, 12))]),
                        candidates=both_nodes()['candidates']),
              expect=True, nodes=[[1], [0]])),
        ('preferred policy, nothing aligned -> candidates kept in order',
         dict(specs=policy('preferred'),
              host=dict(both_nodes(), numa=two_nodes()),
              spec=dict(vcpus=8), expect=True, nodes=[[0], [1]])),
    ]

    spec = {}
    nodes = None

    def test_policy(self):
        host = make_host(**self.host)
        spec = make_spec(self.specs, **self.spec)
        self.assertEqual(self.expect, self.passes(host, spec))
        if self.nodes is not None:
            self.assertEqual(self.nodes, nodes_of(host))


class DefaultPolicyTest(_Base):

    def test_configured_default_applies_when_flavor_sets_none(self):
        self.flags(default_numa_policy='required', group='accelerator')
        self.filt = accelerator_filter.AcceleratorNUMAFilter()
        host = make_host(devices=[GPU1], numa=two_nodes(
            node1_pinned=range(12, 16)),
            candidates=[candidate((rp_of(GPU1), {'PGPU': 1}))])
        self.assertFalse(self.passes(host, make_spec(ONE_GPU,
                                                     dedicated=True)))

    def test_flavor_policy_beats_configured_default(self):
        self.flags(default_numa_policy='required', group='accelerator')
        self.filt = accelerator_filter.AcceleratorNUMAFilter()
        host = make_host(devices=[GPU1], numa=two_nodes(
            node1_pinned=range(12, 16)),
            candidates=[candidate((rp_of(GPU1), {'PGPU': 1}))])
        self.assertTrue(self.passes(host, make_spec(policy('preferred'),
                                                    dedicated=True)))


class LimitsTest(_Base):
    """The NUMA limits Nova's claim fits the guest with."""

    def _host(self, **kw):
        kw.setdefault('devices', [GPU1])
        kw.setdefault('candidates', [candidate((rp_of(GPU1), {'PGPU': 1}))])
        return make_host(**kw)

    def test_dedicated_guest_aligned_limits_carry_node_marker(self):
        old = objects.NUMATopologyLimits(
            cpu_allocation_ratio=2.0, ram_allocation_ratio=1.25,
            network_metadata=objects.NetworkMetadata(
                physnets={'physnet1'}, tunneled=True))
        before = copy.deepcopy(old)
        host = self._host(limits={'numa_topology': old})
        self.assertTrue(self.passes(host, make_spec(ONE_GPU,
                                                    dedicated=True)))
        new = host.limits['numa_topology']
        self.assertIsNot(old, new)
        self.assertEqual({'physnet1', numa_affinity.marker(1)},
                         new.network_metadata.physnets)
        self.assertTrue(new.network_metadata.tunneled)
        self.assertEqual(2.0, new.cpu_allocation_ratio)
        self.assertEqual(1.25, new.ram_allocation_ratio)
        self.assertEqual(before.obj_to_primitive(), old.obj_to_primitive(),
                         'the shared limits object was mutated')

    def test_hosts_of_one_request_share_limits_of_the_same_content(self):
        spec = make_spec(ONE_GPU, dedicated=True)
        first, second = self._host(), self._host()
        self.assertTrue(self.passes(first, spec))
        self.assertTrue(self.passes(second, spec))
        self.assertIs(first.limits['numa_topology'],
                      second.limits['numa_topology'])
        # The next request makes its own: nothing carries over.
        third = self._host()
        self.assertTrue(self.passes(third, make_spec(ONE_GPU,
                                                     dedicated=True)))
        self.assertIsNot(first.limits['numa_topology'],
                         third.limits['numa_topology'])
        self.assertEqual(first.limits['numa_topology'].obj_to_primitive(),
                         third.limits['numa_topology'].obj_to_primitive())

    def test_dedicated_guest_aligned_without_limits_uses_host_ratios(self):
        host = self._host()
        spec = make_spec(ONE_GPU, dedicated=True,
                         network_metadata=objects.NetworkMetadata(
                             physnets={'physnet2'}, tunneled=False))
        self.assertTrue(self.passes(host, spec))
        new = host.limits['numa_topology']
        self.assertEqual(4.0, new.cpu_allocation_ratio)
        self.assertEqual(1.5, new.ram_allocation_ratio)
        self.assertEqual({'physnet2', numa_affinity.marker(1)},
                         new.network_metadata.physnets)
        self.assertFalse(new.network_metadata.tunneled)

    def test_markers_of_a_previous_request_are_replaced(self):
        old = objects.NUMATopologyLimits(
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            network_metadata=objects.NetworkMetadata(
                physnets={numa_affinity.marker(0), 'physnet1'},
                tunneled=False))
        host = self._host(limits={'numa_topology': old})
        self.assertTrue(self.passes(host, make_spec(ONE_GPU,
                                                    dedicated=True)))
        self.assertEqual(
            {'physnet1', numa_affinity.marker(1)},
            host.limits['numa_topology'].network_metadata.physnets)
        self.assertEqual({numa_affinity.marker(0), 'physnet1'},
                         old.network_metadata.physnets)

    def test_dedicated_guest_not_aligned_drops_stale_markers(self):
        old = objects.NUMATopologyLimits(
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            network_metadata=objects.NetworkMetadata(
                physnets={numa_affinity.marker(0)}, tunneled=False))
        host = self._host(limits={'numa_topology': old}, numa=two_nodes(
            node1_pinned=range(12, 16)))
        self.assertTrue(self.passes(host, make_spec(policy('preferred'),
                                                    dedicated=True)))
        self.assertEqual(
            set(), host.limits['numa_topology'].network_metadata.physnets)
        self.assertEqual({numa_affinity.marker(0)},
                         old.network_metadata.physnets)

    def test_dedicated_guest_not_aligned_keeps_clean_limits_object(self):
        old = objects.NUMATopologyLimits(
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            network_metadata=objects.NetworkMetadata(
                physnets={'physnet1'}, tunneled=False))
        host = self._host(limits={'numa_topology': old}, numa=two_nodes(
            node1_pinned=range(12, 16)))
        self.assertTrue(self.passes(host, make_spec(policy('preferred'),
                                                    dedicated=True)))
        self.assertIs(old, host.limits['numa_topology'])

    def test_none_policy_sets_no_marker(self):
        host = self._host()
        self.assertTrue(self.passes(host, make_spec(policy('none'),
                                                    dedicated=True)))
        self.assertNotIn('numa_topology', host.limits)

    def test_shared_guest_without_numa_topology_leaves_limits_alone(self):
        host = self._host()
        self.assertTrue(self.passes(host, make_spec(ONE_GPU)))
        self.assertEqual({}, host.limits)

    def test_marker_is_what_nova_claim_honours(self):
        # Nova's own fitting, with our limits, lands the guest on the GPU's
        # node although node 0 comes first and has room.
        from nova.virt import hardware
        host = self._host()
        spec = make_spec(ONE_GPU, dedicated=True)
        self.assertTrue(self.passes(host, spec))
        fitted = hardware.numa_fit_instance_to_host(
            host.numa_topology, spec.numa_topology,
            limits=host.limits['numa_topology'], provider_mapping=None)
        self.assertEqual(1, fitted.cells[0].id)
        unaligned = hardware.numa_fit_instance_to_host(
            host.numa_topology, spec.numa_topology, provider_mapping=None)
        self.assertEqual(0, unaligned.cells[0].id)


class RequestHandlingTest(_Base):

    def test_no_accelerator_requested_passes_without_reading_stats(self):
        host = make_host(devices=[GPU0], candidates=[candidate()])
        with mock.patch.object(host_stats, 'decode') as decode:
            self.assertTrue(self.passes(host, make_spec({})))
            self.assertTrue(self.passes(host, make_spec(
                {'hw:cpu_policy': 'dedicated'}, dedicated=True)))
        decode.assert_not_called()
        self.assertEqual([candidate()], host.allocation_candidates)

    def test_request_spec_is_not_mutated(self):
        host = make_host(**both_nodes())
        spec = make_spec(policy('preferred'), dedicated=True)
        before = spec.obj_to_primitive()
        self.assertTrue(self.passes(host, spec))
        self.assertEqual(before, spec.obj_to_primitive())

    def test_flavor_parsed_once_for_all_hosts(self):
        spec = make_spec(policy('preferred'))
        with mock.patch.object(request, 'parse_extra_specs',
                               wraps=request.parse_extra_specs) as parse:
            for i in range(5):
                self.passes(make_host('host%d' % i, **both_nodes()), spec)
            # An equal flavor in a new request needs no parse either.
            self.passes(make_host(**both_nodes()),
                        make_spec(policy('preferred')))
        self.assertEqual(1, parse.call_count)

    def test_invalid_spec_rejects_host_and_warns_once_per_request(self):
        bad = dict(ONE_GPU, **{'accelerator:numa_policy': 'bogus'})
        spec = make_spec(bad, name='gpu.bad')
        with mock.patch.object(accelerator_filter.LOG, 'warning') as warn:
            for i in range(3):
                self.assertFalse(self.passes(
                    make_host('host%d' % i, **both_nodes()), spec))
            self.assertEqual(1, warn.call_count)
            message = warn.call_args[0][0] % warn.call_args[0][1]
            self.assertIn('gpu.bad', message)
            self.assertIn('accelerator:numa_policy=bogus', message)
            self.assertFalse(self.passes(make_host(**both_nodes()),
                                         make_spec(bad, name='gpu.bad')))
            self.assertEqual(2, warn.call_count)

    def test_rebuild_is_not_filtered(self):
        spec = make_spec(policy('required'))
        spec.scheduler_hints = {'_nova_check_type': ['rebuild']}
        self.assertTrue(self.passes(make_host(), spec))
        # Asked once per request: the next request is not a rebuild.
        self.assertFalse(self.passes(make_host(devices=[]),
                                     make_spec(policy('required'))))

    def test_rejections_are_logged_at_debug_with_lazy_args(self):
        host = make_host(devices=[GPU1], numa=two_nodes(
            node1_pinned=range(12, 16)),
            candidates=[candidate((rp_of(GPU1), {'PGPU': 1}))])
        with mock.patch.object(accelerator_filter.LOG, 'debug') as debug:
            self.assertFalse(self.passes(host, make_spec(
                policy('required'), dedicated=True)))
        fmt, args = debug.call_args[0]
        message = fmt % args
        self.assertIn('host1', message)
        self.assertIn('required', message)
        self.assertIn('nodes 1: no room', message)
        self.assertIn('4 dedicated vCPUs', message)


class LoaderTest(test.NoDBTestCase):

    def test_nova_loads_the_filter_through_all_filters(self):
        classes = nova_filters.HostFilterHandler().get_matching_classes(
            ['nova.scheduler.filters.all_filters',
             'cyborg_nova.filters.all_filters'])
        names = [cls.__name__ for cls in classes]
        self.assertIn('AcceleratorNUMAFilter', names)
        self.assertIn('NUMATopologyFilter', names)
        self.assertEqual(len(names), len(set(names)),
                         'a filter name collides with one of Nova\'s')

    def test_all_filters(self):
        self.assertIn(accelerator_filter.AcceleratorNUMAFilter,
                      filters.all_filters())

    def test_registering_options_twice_is_harmless(self):
        conf = accelerator_filter.CONF
        cn_conf.register_opts(conf)
        cn_conf.register_opts(conf)
        self.assertEqual(10.0, conf.accelerator.stranding_weight_multiplier)


# -- accelerator:link_policy ------------------------------------------------

def _mixed_host(in_use=(), strip_islands=False, order=(1, 0)):
    """The mixed host of test_topology: node 0 holds two NVLink pairs (an
    island of 2 free), node 1 two lone GPUs (islands of 1); Placement
    offers the groups in *order*."""
    from cyborg_nova.tests.unit import test_topology as machines
    devices = machines.mixed()
    stats = stats_of(devices, in_use)
    if strip_islands:       # what a compute of an older release sends
        import json
        data = json.loads(stats[host_stats.STATS_KEY])
        del data['islands']
        stats = {host_stats.STATS_KEY: json.dumps(data)}
    rp = {0: rp_of(devices[0]), 1: rp_of(devices[-1])}
    host = make_host(devices=devices, in_use=in_use, candidates=[
        candidate((rp[n], {'PGPU': 2})) for n in order])
    host.stats = stats
    return host, rp


def link(count, name=None, **extra):
    specs = {'resources:PGPU': str(count)}
    if name:
        specs['accelerator:link_policy'] = name
    specs.update(extra)
    return specs


class LinkPolicyTest(_Base):

    def providers(self, host):
        return [next(rp for rp in c['allocations'] if rp != ROOT)
                for c in host.allocation_candidates]

    def test_strict_keeps_only_the_group_with_an_island(self):
        host, rp = _mixed_host()
        self.assertTrue(self.passes(host, make_spec(link(2, 'strict'))))
        self.assertEqual([rp[0]], self.providers(host))

    def test_strict_without_a_free_island_rejects_the_host(self):
        host, _ = _mixed_host(in_use=('0000:03:00.0', '0000:07:00.0'),
                              order=(0, 1))
        with mock.patch.object(accelerator_filter.LOG, 'debug') as debug:
            self.assertFalse(self.passes(host, make_spec(link(2, 'strict'))))
        fmt, args = debug.call_args[0]
        message = fmt % args
        self.assertIn('link policy strict', message)
        self.assertIn('free device(s) in one link island, 2 asked', message)

    def test_best_effort_puts_the_island_first_and_keeps_the_rest(self):
        host, rp = _mixed_host()
        self.assertTrue(self.passes(host, make_spec(link(2))))
        self.assertEqual([rp[0], rp[1]], self.providers(host))

    def test_numa_alignment_still_comes_first(self):
        host, rp = _mixed_host()
        host.numa_topology = two_nodes(node1_memory_usage=0)
        host.numa_topology.cells[0].memory_usage = 16384   # node 0 full
        self.assertTrue(self.passes(host, make_spec(link(2))))
        self.assertEqual([rp[1], rp[0]], self.providers(host))

    def test_one_device_is_always_an_island(self):
        host, rp = _mixed_host(order=(1,))
        host.allocation_candidates[0]['allocations'][rp[1]][
            'resources']['PGPU'] = 1
        self.assertTrue(self.passes(host, make_spec(link(1, 'strict'))))

    def test_strict_devices_from_two_providers_are_dropped(self):
        host, rp = _mixed_host()
        host.allocation_candidates = [
            candidate((rp[0], {'PGPU': 1}), (rp[1], {'PGPU': 1}))]
        spec = make_spec({'resources1:PGPU': '1', 'resources2:PGPU': '1',
                          'accelerator:link_policy': 'strict'})
        self.assertFalse(self.passes(host, spec))

    def test_strict_on_a_host_that_reports_no_islands_is_refused(self):
        host, _ = _mixed_host(strip_islands=True)
        self.assertFalse(self.passes(host, make_spec(link(2, 'strict'))))

    def test_best_effort_on_a_host_that_reports_no_islands_passes(self):
        host, rp = _mixed_host(strip_islands=True)
        self.assertTrue(self.passes(host, make_spec(link(2))))
        self.assertEqual([rp[1], rp[0]], self.providers(host))
