"""The NUMA topology filter: ``cyborg_nova.filters.numa_topology_filter``.

The equivalence table runs Nova's ``NUMATopologyFilter`` and ours over the
same requests (built by Nova's own ``numa_get_constraints`` from flavors and
images) and the same host states, and compares what each leaves: whether
the host passes, the candidates kept, the NUMA limits.  Nova's own unit
tests of its filter then run against ours.  The accelerator cases use the
hosts of the AcceleratorNUMAFilter tests, whose NUMA cells carry node
markers as our compute driver reports them.
"""

import copy
import json
from unittest import mock

from oslo_utils.fixture import uuidsentinel as uuids
import testscenarios

from nova import exception
from nova import objects
from nova.pci import stats as pci_stats
from nova.pci import whitelist
from nova.scheduler import filters as nova_filters
from nova.scheduler.filters import numa_topology_filter as nova_ntf
from nova import test
from nova.tests.unit.scheduler import fakes
from nova.tests.unit.scheduler.filters import test_numa_topology_filters
from nova.virt import hardware

from cyborg_nova import filters
from cyborg_nova.filters import accelerator_filter
from cyborg_nova.filters import numa_topology_filter
from cyborg_nova.policy import numa_affinity
from cyborg_nova.tests.unit import test_accelerator_filter as acc

ROOT = uuids.root
PCI_REQUEST = uuids.pci_request
VENDOR, PRODUCT = '8086', '1528'


# -- host states ------------------------------------------------------------

def _cell(node, cpus, pcpus, siblings, pinned=(), memory=8192,
          memory_usage=0, cpu_usage=0, pages=None, physnets=(),
          tunneled=False, metadata=True):
    """A host NUMA cell; *pages* ``[(size_kb, total, used[, reserved])]``
    (default: 4K pages for all its memory and 1024 free 2M pages)."""
    if pages is None:
        pages = [(4, memory * 256, memory_usage * 256), (2048, 1024, 0)]
    cell = objects.NUMACell(
        id=node, socket=node, cpuset=set(cpus), pcpuset=set(pcpus),
        pinned_cpus=set(pinned), memory=memory, memory_usage=memory_usage,
        cpu_usage=cpu_usage, siblings=[set(s) for s in siblings],
        mempages=[objects.NUMAPagesTopology(
            size_kb=p[0], total=p[1], used=p[2],
            reserved=p[3] if len(p) > 3 else 0) for p in pages])
    if metadata:
        cell.network_metadata = objects.NetworkMetadata(
            physnets=set(physnets), tunneled=tunneled)
    return cell


def _smt(node, **kw):
    """4 shared and 4 dedicated CPUs; both threads of a core in one set."""
    b = node * 8
    return _cell(node, range(b, b + 4), range(b + 4, b + 8),
                 [(b, b + 1), (b + 2, b + 3), (b + 4, b + 5), (b + 6, b + 7)],
                 **kw)


def _split(node, **kw):
    """Thread 0 of each core shared, thread 1 dedicated (one dedicated
    thread per core, as a cpu_dedicated_set of one thread per core)."""
    b = node * 8
    return _cell(node, range(b, b + 4), range(b + 4, b + 8),
                 [(b + c, b + c + 4) for c in range(4)], **kw)


def _no_smt(node, **kw):
    b = node * 8
    return _cell(node, range(b, b + 4), range(b + 4, b + 8),
                 [(c,) for c in range(b, b + 8)], **kw)


def _topology(*cells):
    return objects.NUMATopology(cells=list(cells))


def _pci_stats(topology, nodes):
    """Legacy (not in Placement) PCI pools: one device per node listed."""
    stats = pci_stats.PciDeviceStats(
        topology, dev_filter=whitelist.Whitelist([json.dumps(
            {'vendor_id': VENDOR, 'product_id': PRODUCT})]))
    for i, node in enumerate(nodes):
        address = '0000:%02x:00.0' % (0x10 + i)
        stats.add_device(objects.PciDevice(
            compute_node_id=1, address=address, vendor_id=VENDOR,
            product_id=PRODUCT, numa_node=node, dev_type='type-PCI',
            parent_addr=None, extra_info={}, status='available',
            request_id=None, dev_id='pci_%d' % i, label='label'))
    return stats


HOSTS = {
    'no NUMA topology': lambda: None,
    'idle, SMT': lambda: _topology(_smt(0), _smt(1)),
    'node 0 pinned': lambda: _topology(_smt(0, pinned=range(4, 8)),
                                       _smt(1)),
    'both nodes pinned': lambda: _topology(
        _smt(0, pinned=range(4, 8)), _smt(1, pinned=range(12, 16))),
    'one thread of each dedicated core pinned': lambda: _topology(
        _smt(0, pinned=(4, 6)), _smt(1, pinned=(12,))),
    'dedicated threads without their siblings': lambda: _topology(
        _split(0), _split(1, pinned=(13,))),
    'no SMT': lambda: _topology(_no_smt(0), _no_smt(1, pinned=(12, 13))),
    'hugepages: 1G on node 0, few 2M on node 1': lambda: _topology(
        _smt(0, pages=[(4, 8192 * 256, 0), (1048576, 2, 0)]),
        _smt(1, pages=[(4, 8192 * 256, 0), (2048, 512, 256)])),
    '2M pages reserved on node 0': lambda: _topology(
        _smt(0, pages=[(4, 8192 * 256, 0), (2048, 1024, 0, 512)]),
        _smt(1, pages=[(4, 8192 * 256, 0), (2048, 1024, 256)])),
    'no page sizes reported': lambda: _topology(_smt(0, pages=[]),
                                                _smt(1, pages=[])),
    'only 2M pages reported': lambda: _topology(
        _smt(0, pages=[(2048, 4096, 0)]), _smt(1, pages=[(2048, 4096, 0)])),
    'a page size reported twice, the first one full': lambda: _topology(
        _smt(0, pages=[(4, 1024, 1024), (4, 8192 * 256, 0)]),
        _smt(1, pages=[(2048, 1024, 1024), (4, 8192 * 256, 0),
                       (2048, 1024, 0)])),
    'memory used on node 0': lambda: _topology(
        _smt(0, memory_usage=7168), _smt(1, memory_usage=2048)),
    'shared CPUs busy on node 0': lambda: _topology(
        _smt(0, cpu_usage=14), _smt(1)),
    'physnets foo on node 0, bar and tunnel on node 1': lambda: _topology(
        _smt(0, physnets={'foo'}),
        _smt(1, physnets={'bar'}, tunneled=True)),
    'tunnel and physnet foo on node 0, whose CPUs are pinned':
        lambda: _topology(_smt(0, pinned=range(4, 8), physnets={'foo'},
                               tunneled=True), _smt(1)),
    'overlapping sibling sets': lambda: _topology(
        _cell(0, range(4), range(4, 8), [(4, 5), (5, 6), (6, 7), (4, 7)],
              pinned=(7,)),
        _cell(1, range(8, 12), range(12, 16),
              [(12, 13), (13, 14), (14, 15), (12, 15)], pinned=(12, 14))),
    'cells without network metadata': lambda: _topology(
        _smt(0, metadata=False), _smt(1, metadata=False)),
    'one cell': lambda: _topology(_cell(
        0, range(8), range(8, 16), [(c, c + 8) for c in range(8)],
        memory=16384)),
    'three cells, node 1 pinned': lambda: _topology(
        _smt(0, memory_usage=4096), _smt(1, pinned=range(12, 16)),
        _smt(2)),
    'sibling sets missing dedicated CPUs': lambda: _topology(
        _cell(0, range(4), range(4, 8), [(0, 1), (2, 3), (4, 5)]),
        _cell(1, range(8, 12), range(12, 16), [(12,), (13,), (14,)])),
    "Nova's test topology": lambda: copy.deepcopy(fakes.NUMA_TOPOLOGY),
    "Nova's SMT test topology": lambda: copy.deepcopy(
        fakes.NUMA_TOPOLOGIES_W_HT[0]),
}
#: PCI devices (legacy pools) on these nodes, per host.
PCI_NODES = {'idle, SMT': [1], 'node 0 pinned': [0],
             'physnets foo on node 0, bar and tunnel on node 1': [0, 1]}


def make_host(name):
    topology = HOSTS[name]()
    stats = None
    if name in PCI_NODES:
        stats = _pci_stats(topology, PCI_NODES[name])
    root = {'allocations': {ROOT: {'resources': {'PCPU': 2}}},
            'mappings': {'': [ROOT]}}
    # A candidate whose PCI request group maps to a provider no pool has:
    # Nova's PCI check drops it when the request has PCI devices.
    mapped = {'allocations': {ROOT: {'resources': {'PCPU': 2}}},
              'mappings': {'': [ROOT], PCI_REQUEST + '-0': [uuids.other]}}
    return fakes.FakeHostState(name, name, {
        'uuid': ROOT, 'numa_topology': topology, 'pci_stats': stats,
        'cpu_allocation_ratio': 4.0, 'ram_allocation_ratio': 1.5,
        'allocation_candidates': [root, mapped], 'limits': {}})


# -- requests ---------------------------------------------------------------

def make_spec(extra_specs=None, image=None, vcpus=4, memory_mb=2048,
              pci=None, physnets=None, tunneled=False):
    """A request as the conductor builds it: the NUMA topology from Nova's
    ``numa_get_constraints``; *pci* a PCI NUMA affinity policy for one
    device request; *physnets* the network metadata's physnets."""
    flavor = objects.Flavor(name='f', vcpus=vcpus, memory_mb=memory_mb,
                            root_gb=1, ephemeral_gb=0, swap=0,
                            extra_specs=dict(extra_specs or {}))
    image_meta = objects.ImageMeta.from_dict(
        {'properties': dict(image or {})})
    pci_requests = None
    if pci is not None:
        pci_requests = objects.InstancePCIRequests(requests=[
            objects.InstancePCIRequest(
                count=1, request_id=PCI_REQUEST, numa_policy=pci,
                spec=[{'vendor_id': VENDOR, 'product_id': PRODUCT}])])
    spec = objects.RequestSpec(
        instance_uuid=uuids.instance, flavor=flavor, image=image_meta,
        numa_topology=hardware.numa_get_constraints(flavor, image_meta),
        pci_requests=pci_requests, scheduler_hints={})
    if physnets is not None:
        spec.network_metadata = objects.NetworkMetadata(
            physnets=set(physnets), tunneled=tunneled)
    return spec


DEDICATED = {'hw:cpu_policy': 'dedicated'}


def dedicated(**extra):
    return dict(DEDICATED, **extra)


REQUESTS = [
    ('shared CPUs, no NUMA topology', dict()),
    ('shared CPUs, no NUMA topology, PCI device',
     dict(pci='legacy')),
    ('dedicated', dict(extra_specs=DEDICATED)),
    ('dedicated, 2 vCPUs', dict(extra_specs=DEDICATED, vcpus=2)),
    ('dedicated, 8 vCPUs', dict(extra_specs=DEDICATED, vcpus=8)),
    ('dedicated, 6 GiB', dict(extra_specs=DEDICATED, memory_mb=6144)),
    ('dedicated, more memory than a cell',
     dict(extra_specs=DEDICATED, memory_mb=12288)),
    ('dedicated, thread policy prefer',
     dict(extra_specs=dedicated(**{'hw:cpu_thread_policy': 'prefer'}))),
    ('dedicated, thread policy require',
     dict(extra_specs=dedicated(**{'hw:cpu_thread_policy': 'require'}))),
    ('dedicated, thread policy isolate',
     dict(extra_specs=dedicated(**{'hw:cpu_thread_policy': 'isolate'}),
          vcpus=2)),
    ('dedicated, image asks thread policy require',
     dict(image={'hw_cpu_policy': 'dedicated',
                 'hw_cpu_thread_policy': 'require'})),
    ('dedicated, emulator threads isolated',
     dict(extra_specs=dedicated(**{'hw:emulator_threads_policy':
                                   'isolate'}))),
    ('dedicated, small pages',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': 'small'}))),
    ('dedicated, large pages',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': 'large'}))),
    ('dedicated, any pages',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': 'any'}))),
    ('dedicated, 2M pages',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': '2048'}))),
    ('dedicated, 1G pages',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': '1GB'}))),
    ('dedicated, 1G pages, 1.5 GiB',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': '1GB'}),
          memory_mb=1536, fits_nowhere=True)),
    ('dedicated, 2M pages, 1025 MiB',
     dict(extra_specs=dedicated(**{'hw:mem_page_size': '2048'}),
          memory_mb=1025, fits_nowhere=True)),
    ('dedicated, 3 vCPUs', dict(extra_specs=DEDICATED, vcpus=3)),
    ('dedicated, 1025 MiB', dict(extra_specs=DEDICATED, memory_mb=1025)),
    ('dedicated, 2 NUMA nodes',
     dict(extra_specs=dedicated(**{'hw:numa_nodes': '2'}))),
    ('dedicated, 2 asymmetric NUMA nodes',
     dict(extra_specs=dedicated(**{
         'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0',
         'hw:numa_cpus.1': '1-3', 'hw:numa_mem.0': '512',
         'hw:numa_mem.1': '1536'}))),
    ('mixed CPUs',
     dict(extra_specs={'hw:cpu_policy': 'mixed',
                       'hw:cpu_dedicated_mask': '^0'})),
    ('shared CPUs, 1 NUMA node', dict(extra_specs={'hw:numa_nodes': '1'})),
    ('shared CPUs, 2 NUMA nodes, large pages',
     dict(extra_specs={'hw:numa_nodes': '2', 'hw:mem_page_size': 'large'})),
    ('shared CPUs, 1 NUMA node, 6 vCPUs',
     dict(extra_specs={'hw:numa_nodes': '1'}, vcpus=6)),
    ('dedicated, PCI device, legacy NUMA policy',
     dict(extra_specs=DEDICATED, pci='legacy')),
    ('dedicated, PCI device, required NUMA policy',
     dict(extra_specs=DEDICATED, pci='required')),
    ('shared CPUs, 1 NUMA node, PCI device, preferred NUMA policy',
     dict(extra_specs={'hw:numa_nodes': '1'}, pci='preferred')),
    ('dedicated, physnet foo', dict(extra_specs=DEDICATED,
                                    physnets={'foo'})),
    ('dedicated, physnet bar, tunneled',
     dict(extra_specs=DEDICATED, physnets={'bar'}, tunneled=True)),
    ('dedicated, tunneled', dict(extra_specs=DEDICATED, physnets=(),
                                 tunneled=True)),
    ('dedicated, physnets foo and bar',
     dict(extra_specs=DEDICATED, physnets={'foo', 'bar'})),
    ('shared CPUs, 1 NUMA node, physnet foo',
     dict(extra_specs={'hw:numa_nodes': '1'}, physnets={'foo'})),
    ('dedicated, an accelerator, NUMA policy none',
     dict(extra_specs=dedicated(**{'resources:PGPU': '1',
                                   'accelerator:numa_policy': 'none'}))),
]


def _data(obj):
    """An object's primitive without the change lists, for comparing."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()
                    if k != 'nova_object.changes'}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return None if obj is None else strip(obj.obj_to_primitive())


def outcome(filt, host, spec):
    passed = filt._filter_one(host, spec)
    limits = host.limits.get('numa_topology')
    return (passed, [c['mappings'] for c in host.allocation_candidates],
            _data(limits) if passed else None)


class SameAsNovaTest(testscenarios.WithScenarios, test.NoDBTestCase):
    """For each request, every host: the same pass or fail, the same
    candidates kept, the same limits as Nova's NUMATopologyFilter."""

    scenarios = REQUESTS

    extra_specs = image = physnets = pci = None
    vcpus, memory_mb, tunneled = 4, 2048, False
    fits_nowhere = False    # memory not a whole number of its pages

    def test_same_as_nova(self):
        ours = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()
        nova = nova_ntf.NUMATopologyFilter()
        spec = make_spec(self.extra_specs, self.image, self.vcpus,
                         self.memory_mb, self.pci, self.physnets,
                         self.tunneled)
        before = spec.obj_to_primitive()
        differ, passed = [], 0
        # Twice: the second round runs on our filter's cached host facts.
        for _ in range(2):
            for name in HOSTS:
                expected = outcome(nova, make_host(name), spec)
                got = outcome(ours, make_host(name), spec)
                passed += expected[0]
                if got != expected:
                    differ.append('%s: Nova %s, ours %s' % (name, expected,
                                                            got))
        self.assertEqual([], differ)
        self.assertEqual(before, spec.obj_to_primitive(),
                         'the request spec was changed')
        # The table is not vacuous: each request passes some host states
        # and fails others (the no-NUMA requests fail none).
        if self.fits_nowhere:
            self.assertEqual(0, passed)
        elif spec.numa_topology:
            self.assertTrue(0 < passed < 2 * len(HOSTS), passed)


class NovasOwnTestsTest(test_numa_topology_filters.TestNUMATopologyFilter):
    """Nova's unit tests of NUMATopologyFilter, run on ours."""

    def setUp(self):
        super().setUp()
        self.filt_cls = (
            numa_topology_filter.AcceleratorAwareNUMATopologyFilter())


class NoTopologyTest(test.NoDBTestCase):

    def test_request_without_topology_passes_without_reading_the_host(self):
        filt = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()
        spec = make_spec(pci='legacy')
        host = mock.Mock(spec=[])           # any attribute read raises
        with mock.patch.object(objects.RequestSpec, 'obj_clone') as clone:
            self.assertTrue(filt._filter_one(host, spec))
            self.assertTrue(filt.host_passes(host, spec))
        clone.assert_not_called()

    def test_nova_gives_every_dedicated_request_a_topology(self):
        # Nova's _satisfies_cpu_policy can only fail when
        # hw:cpu_policy=dedicated comes from the flavor or the image; then
        # the request always has a NUMA topology (or is refused), so
        # returning at once without a topology decides as Nova does.
        values = (None, 'shared', 'dedicated', 'mixed')
        for flavor_policy in values:
            for image_policy in values:
                if 'dedicated' not in (flavor_policy, image_policy):
                    continue
                specs = {'hw:cpu_thread_policy': 'require'}
                if flavor_policy:
                    specs['hw:cpu_policy'] = flavor_policy
                if flavor_policy == 'mixed':
                    specs['hw:cpu_dedicated_mask'] = '^0'
                image = {'hw_cpu_policy': image_policy} if image_policy else {}
                try:
                    spec = make_spec(specs, image)
                except (exception.Invalid,
                        exception.ImageCPUPinningForbidden) as exc:
                    del exc         # refused at the API: never scheduled
                    continue
                self.assertIsNotNone(spec.numa_topology,
                                     (flavor_policy, image_policy))


class RebuildTest(test.NoDBTestCase):

    def test_rebuild_is_not_filtered_as_in_nova(self):
        spec = make_spec(DEDICATED)
        spec.scheduler_hints = {'_nova_check_type': ['rebuild']}
        ours = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()
        for filt in (nova_ntf.NUMATopologyFilter(), ours):
            self.assertTrue(filt._filter_one(make_host('both nodes pinned'),
                                             spec))
            self.assertFalse(filt.host_passes(make_host('both nodes pinned'),
                                              spec))


class UnusualCellsTest(test.NoDBTestCase):

    def test_a_cell_without_sibling_sets_fails_as_in_nova(self):
        # Nova's packing takes max() of the sibling sets' sizes.
        def host():
            h = make_host('idle, SMT')
            for cell in h.numa_topology.cells:
                cell.siblings = []
            return h
        spec = make_spec(DEDICATED)
        self.assertRaises(ValueError,
                          nova_ntf.NUMATopologyFilter()._filter_one,
                          host(), spec)
        filt = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()
        with mock.patch.object(hardware, 'numa_fit_instance_to_host',
                               wraps=hardware.numa_fit_instance_to_host) as f:
            self.assertRaises(ValueError, filt._filter_one, host(), spec)
        self.assertTrue(f.called)

    def test_a_cell_with_fields_unset_is_fitted_by_nova(self):
        def host():
            h = make_host('idle, SMT')
            h.numa_topology.cells[0].obj_reset_changes()
            del h.numa_topology.cells[0].mempages
            return h
        spec = make_spec(DEDICATED)
        filt = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()
        try:
            expected = outcome(nova_ntf.NUMATopologyFilter(), host(), spec)
        except Exception as exc:
            self.assertRaises(type(exc), outcome, filt, host(), spec)
        else:
            self.assertEqual(expected, outcome(filt, host(), spec))


class CostTest(test.NoDBTestCase):
    """What the filter does not do."""

    def setUp(self):
        super().setUp()
        self.filt = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()

    def test_one_cell_dedicated_guest_needs_no_fitting_nor_copy(self):
        spec = make_spec(DEDICATED)
        with mock.patch.object(hardware, 'numa_fit_instance_to_host') as fit, \
                mock.patch.object(objects.RequestSpec, 'obj_clone') as rs, \
                mock.patch.object(objects.InstanceNUMATopology,
                                  'obj_clone') as clone:
            self.assertTrue(self.filt._filter_one(make_host('idle, SMT'),
                                                  spec))
            self.assertFalse(self.filt._filter_one(
                make_host('both nodes pinned'), spec))
        fit.assert_not_called()
        rs.assert_not_called()
        clone.assert_not_called()

    def test_other_guests_copy_only_their_topology_once_per_host(self):
        spec = make_spec(dedicated(**{'hw:numa_nodes': '2'}))
        real = objects.InstanceNUMATopology.obj_clone
        clones = []

        def counting(topology):
            clones.append(topology)
            return real(topology)

        with mock.patch.object(objects.RequestSpec, 'obj_clone') as rs, \
                mock.patch.object(objects.InstanceNUMATopology, 'obj_clone',
                                  counting):
            self.assertTrue(self.filt._filter_one(make_host('idle, SMT'),
                                                  spec))
        rs.assert_not_called()
        self.assertEqual([spec.numa_topology], clones)

    def test_too_few_cells_with_free_pcpus_rejected_before_fitting(self):
        spec = make_spec(dedicated(**{'hw:numa_nodes': '2'}))
        with mock.patch.object(hardware,
                               'numa_fit_instance_to_host') as fit:
            self.assertFalse(self.filt._filter_one(
                make_host('node 0 pinned'), spec))
        fit.assert_not_called()
        # Nova agrees (and needs its fitting to find out).
        self.assertFalse(nova_ntf.NUMATopologyFilter()._filter_one(
            make_host('node 0 pinned'), spec))


# -- accelerators -----------------------------------------------------------

def gpu_host(numa=None, limits=None):
    """A GPU on each node; Placement offers node 0's first."""
    kw = acc.both_nodes()
    if numa is not None:
        kw['numa'] = numa
    return acc.make_host(limits=limits, **kw)


def with_image(spec):
    """Nova's NUMA filters read the image's properties."""
    spec.image = objects.ImageMeta(properties=objects.ImageMetaProps())
    spec.pci_requests = objects.InstancePCIRequests(requests=[])
    spec.instance_uuid = uuids.instance
    return spec


def acc_spec(extra_specs, **kw):
    return with_image(acc.make_spec(extra_specs, **kw))


def gpu_spec(policy, **kw):
    return acc_spec(acc.policy(policy), **kw)


class AcceleratorTest(test.NoDBTestCase):
    """Candidates are fitted with their devices' node markers."""

    def setUp(self):
        super().setUp()
        self.filt = numa_topology_filter.AcceleratorAwareNUMATopologyFilter()

    def markers(self, host):
        return host.limits['numa_topology'].network_metadata.physnets

    def test_required_keeps_candidates_that_fit_on_their_devices_node(self):
        host = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
        self.assertTrue(self.filt._filter_one(
            host, gpu_spec('required', dedicated=True)))
        self.assertEqual([[0]], acc.nodes_of(host))
        self.assertEqual({numa_affinity.marker(0)}, self.markers(host))

    def test_required_fails_host_where_no_device_node_has_room(self):
        host = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
        host.allocation_candidates = host.allocation_candidates[1:]
        self.assertFalse(self.filt._filter_one(
            host, gpu_spec('required', dedicated=True)))
        # Nova's filter would have passed it, unaligned.
        host = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
        host.allocation_candidates = host.allocation_candidates[1:]
        self.assertTrue(nova_ntf.NUMATopologyFilter()._filter_one(
            host, gpu_spec('required', dedicated=True)))

    def test_required_with_more_device_nodes_than_guest_cells_fails(self):
        host = acc.make_host(devices=[acc.GPU0, acc.GPU1], candidates=[
            acc.candidate((acc.rp_of(acc.GPU0), {'PGPU': 1}),
                          (acc.rp_of(acc.GPU1), {'PGPU': 1}))])
        spec = acc_spec({'resources1:PGPU': '1', 'resources2:PGPU': '1',
                         'accelerator:numa_policy': 'required'},
                        dedicated=True)
        self.assertFalse(self.filt._filter_one(host, spec))
        host = acc.make_host(devices=[acc.GPU0, acc.GPU1], candidates=[
            acc.candidate((acc.rp_of(acc.GPU0), {'PGPU': 1}),
                          (acc.rp_of(acc.GPU1), {'PGPU': 1}))])
        spec = acc_spec({'resources1:PGPU': '1', 'resources2:PGPU': '1',
                         'accelerator:numa_policy': 'required'},
                        dedicated=True, numa_cells=2, vcpus=8)
        self.assertTrue(self.filt._filter_one(host, spec))
        self.assertEqual({numa_affinity.marker(0), numa_affinity.marker(1)},
                         self.markers(host))

    def test_preferred_keeps_the_aligned_candidates(self):
        host = gpu_host()
        self.assertTrue(self.filt._filter_one(
            host, gpu_spec('preferred', dedicated=True)))
        self.assertEqual([[0], [1]], acc.nodes_of(host))
        self.assertEqual({numa_affinity.marker(0)}, self.markers(host))

    def test_preferred_falls_back_to_novas_answer_without_markers(self):
        # The only GPU left is on node 1, whose dedicated CPUs are all
        # pinned: the guest goes on node 0, as Nova's filter would have it.
        def host():
            h = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
            h.allocation_candidates = h.allocation_candidates[1:]
            return h
        spec = gpu_spec('preferred', dedicated=True)
        ours = host()
        self.assertTrue(self.filt._filter_one(ours, spec))
        self.assertEqual([[1]], acc.nodes_of(ours))
        self.assertNotIn('network_metadata', ours.limits['numa_topology'])
        nova = host()
        self.assertTrue(nova_ntf.NUMATopologyFilter()._filter_one(nova, spec))
        self.assertEqual(_data(nova.limits['numa_topology']),
                         _data(ours.limits['numa_topology']))

    def test_none_policy_is_novas_answer(self):
        host = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
        self.assertTrue(self.filt._filter_one(
            host, gpu_spec('none', dedicated=True)))
        self.assertEqual([[0], [1]], acc.nodes_of(host))
        self.assertNotIn('network_metadata', host.limits['numa_topology'])

    def test_stale_markers_in_limits_are_replaced(self):
        old = objects.NUMATopologyLimits(
            cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
            network_metadata=objects.NetworkMetadata(
                physnets={numa_affinity.marker(1)}, tunneled=False))
        host = gpu_host(limits={'numa_topology': old})
        spec = gpu_spec('required', dedicated=True,
                        network_metadata=objects.NetworkMetadata(
                            physnets={'physnet1'}, tunneled=True))
        self.assertTrue(self.filt._filter_one(host, spec))
        new = host.limits['numa_topology']
        self.assertEqual({'physnet1', numa_affinity.marker(0)},
                         new.network_metadata.physnets)
        self.assertTrue(new.network_metadata.tunneled)
        self.assertEqual(4.0, new.cpu_allocation_ratio)
        self.assertEqual({numa_affinity.marker(1)},
                         old.network_metadata.physnets)

    def test_the_limits_land_novas_claim_on_the_device_node(self):
        # Node 1 first in Placement's order; Nova alone would pick node 0
        # (it has the most free memory and comes first).
        host = acc.make_host(devices=[acc.GPU0, acc.GPU1], candidates=[
            acc.candidate((acc.rp_of(acc.GPU1), {'PGPU': 1})),
            acc.candidate((acc.rp_of(acc.GPU0), {'PGPU': 1}))])
        spec = gpu_spec('required', dedicated=True)
        self.assertTrue(self.filt._filter_one(host, spec))
        fitted = hardware.numa_fit_instance_to_host(
            host.numa_topology, spec.numa_topology,
            limits=host.limits['numa_topology'], provider_mapping=None)
        self.assertEqual(1, fitted.cells[0].id)

    def test_filters_after_accelerator_filter_keep_its_choice(self):
        # The operator order: AcceleratorNUMAFilter first.
        host = gpu_host(numa=acc.two_nodes(node1_pinned=range(12, 16)))
        spec = gpu_spec('preferred', dedicated=True)
        self.assertTrue(accelerator_filter.AcceleratorNUMAFilter()
                        ._filter_one(host, spec))
        self.assertTrue(self.filt._filter_one(host, spec))
        self.assertEqual([[0]], acc.nodes_of(host))
        self.assertEqual({numa_affinity.marker(0)}, self.markers(host))

    def test_multi_cell_guest_is_fitted_by_nova_with_markers(self):
        host = acc.make_host(devices=[acc.GPU0, acc.GPU1], candidates=[
            acc.candidate((acc.rp_of(acc.GPU0), {'PGPU': 1}),
                          (acc.rp_of(acc.GPU1), {'PGPU': 1}))])
        spec = acc_spec({'resources1:PGPU': '1', 'resources2:PGPU': '1',
                         'accelerator:numa_policy': 'required'},
                        dedicated=True, numa_cells=2, vcpus=8)
        with mock.patch.object(hardware, 'numa_fit_instance_to_host',
                               wraps=hardware.numa_fit_instance_to_host) as f:
            self.assertTrue(self.filt._filter_one(host, spec))
        self.assertEqual({numa_affinity.marker(0), numa_affinity.marker(1)},
                         f.call_args.kwargs['limits'].network_metadata
                         .physnets)


class LoaderTest(test.NoDBTestCase):

    def test_nova_loads_it_through_all_filters_without_collision(self):
        classes = nova_filters.HostFilterHandler().get_matching_classes(
            ['nova.scheduler.filters.all_filters',
             'cyborg_nova.filters.all_filters'])
        names = [cls.__name__ for cls in classes]
        self.assertIn('AcceleratorAwareNUMATopologyFilter', names)
        self.assertEqual(len(names), len(set(names)))

    def test_all_filters(self):
        self.assertIn(numa_topology_filter.AcceleratorAwareNUMATopologyFilter,
                      filters.all_filters())
