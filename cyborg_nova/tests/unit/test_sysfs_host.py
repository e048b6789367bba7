"""Reading a host from sysfs: ``cyborg_nova.sysfs.host``.

On the real H100 capture and on synthetic hosts: locality, IOMMU groups,
SR-IOV, mdev types; and a broken tree (vanished devices, unreadable or
malformed attributes) never stops the discovery of the other devices.
"""

import os
import shutil

import fixtures
from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import testscenarios
import testtools

from cyborg_nova.sysfs import host as sysfs_host
from cyborg_nova.sysfs import parse
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import sysfs_builder

H100_ROOT = hosts.captured_host('h100-1gpu-vm')
H100_GPU = '0000:00:06.0'


def _build(test, name):
    """A synthetic host by name, in a directory removed after the test."""
    root = test.useFixture(fixtures.TempDir()).path
    builder = hosts.SYNTHETIC_HOSTS[name](root)
    return sysfs_host.SysfsHost(root), builder


class H100CaptureTest(testtools.TestCase):
    """The real capture: one H100 passed through to a VM, one NUMA node."""

    def setUp(self):
        super().setUp()
        if not os.path.isdir(H100_ROOT):
            self.skipTest('the h100-1gpu-vm capture is not in this tree')
        self.host = sysfs_host.SysfsHost(H100_ROOT)
        self.gpu = self.host.read_pci_device(H100_GPU)

    def test_every_pci_device_is_listed(self):
        self.assertEqual(
            ['0000:00:00.0', '0000:00:01.0', '0000:00:02.0', '0000:00:03.0',
             '0000:00:04.0', '0000:00:05.0', H100_GPU],
            self.host.pci_addresses())

    def test_identity(self):
        self.assertEqual(('10de', '2330', '030200'),
                         (self.gpu.vendor_id, self.gpu.product_id,
                          self.gpu.class_id))

    def test_numa_node_minus_one_is_derived_from_local_cpulist(self):
        # The kernel says -1; all 16 local CPUs are on node 0.
        with open(os.path.join(self.host.device_dir(H100_GPU),
                               'numa_node')) as f:
            self.assertEqual('-1', f.read().strip())
        self.assertEqual(0, self.gpu.numa_node)
        self.assertEqual('local_cpulist', self.gpu.numa_source)
        self.assertEqual(tuple(range(16)), self.gpu.local_cpus)

    def test_one_numa_node(self):
        self.assertEqual({0: tuple(range(16))}, self.host.numa_nodes())

    def test_no_iommu(self):
        self.assertFalse(self.host.iommu_enabled())
        self.assertIsNone(self.gpu.iommu_group)
        self.assertEqual((), self.gpu.iommu_group_members)

    def test_bound_to_the_nvidia_driver(self):
        self.assertEqual('nvidia', self.gpu.kernel_driver)
        self.assertEqual('nvidia', self.host.kernel_driver_of(H100_GPU))

    def test_host_bridge_has_no_kernel_driver(self):
        self.assertIsNone(self.host.kernel_driver_of('0000:00:00.0'))

    def test_pcie_path_is_the_root_complex(self):
        self.assertEqual(('pci0000:00',), self.gpu.pcie_path)

    def test_reset_and_link(self):
        self.assertEqual(('flr',), self.gpu.reset_methods)
        self.assertIn('current_link_width', self.gpu.link)

    def test_not_sr_iov_and_read_cleanly(self):
        self.assertIsNone(self.gpu.physfn)
        self.assertEqual((), self.gpu.virtfns)
        self.assertEqual((), self.gpu.errors)

    def test_every_device_reads_without_errors(self):
        for address in self.host.pci_addresses():
            dev = self.host.read_pci_device(address)
            self.assertEqual((), dev.errors, address)
            self.assertEqual(0, dev.numa_node, address)

    def test_class_of(self):
        self.assertEqual('060000', self.host.class_of('0000:00:00.0'))
        self.assertEqual('020000', self.host.class_of('0000:00:03.0'))


class SyntheticTopologyTest(testtools.TestCase):

    def test_two_socket_numa_nodes(self):
        host, _ = _build(self, 'pcie-8gpu-2socket')
        self.assertEqual({0: tuple(range(16)), 1: tuple(range(16, 32))},
                         host.numa_nodes())

    def test_numa_node_from_numa_node(self):
        host, _ = _build(self, 'pcie-8gpu-2socket')
        dev = host.read_pci_device('0000:83:00.0')
        self.assertEqual((1, 'numa_node'), (dev.numa_node, dev.numa_source))

    def test_gpus_alone_in_their_iommu_groups(self):
        host, _ = _build(self, 'pcie-8gpu-2socket')
        self.assertTrue(host.iommu_enabled())
        groups = set()
        for address in ('0000:03:00.0', '0000:04:00.0', '0000:87:00.0'):
            dev = host.read_pci_device(address)
            self.assertIsNotNone(dev.iommu_group)
            self.assertEqual((), dev.iommu_group_members)
            groups.add(dev.iommu_group)
        self.assertEqual(3, len(groups))

    def test_iommu_group_members_exclude_the_device(self):
        host, _ = _build(self, 'gpu-shares-iommu-group-with-nic')
        gpu = host.read_pci_device('0000:01:00.0')
        self.assertEqual(2, gpu.iommu_group)
        self.assertEqual(('0000:01:00.1',), gpu.iommu_group_members)
        self.assertEqual(('0000:01:00.0', '0000:01:00.1'),
                         host.iommu_group_members(2))

    def test_pcie_path_through_a_switch(self):
        host, _ = _build(self, 'pcie-8gpu-2socket')
        dev = host.read_pci_device('0000:84:00.0')
        self.assertEqual(('pci0000:80', '0000:80:01.0', '0000:81:00.0',
                          '0000:82:01.0'), dev.pcie_path)

    def test_sr_iov_physical_function_lists_its_vfs(self):
        host, _ = _build(self, 'sriov-accelerator')
        pf = host.read_pci_device('0000:81:00.0')
        self.assertEqual(('0000:81:00.1', '0000:81:00.2', '0000:81:00.3',
                          '0000:81:00.4'), pf.virtfns)
        self.assertIsNone(pf.physfn)

    def test_sr_iov_virtual_function_names_its_pf(self):
        host, _ = _build(self, 'sriov-accelerator')
        vf = host.read_pci_device('0000:81:00.3')
        self.assertEqual('0000:81:00.0', vf.physfn)
        self.assertEqual((), vf.virtfns)
        self.assertEqual((1, 'vfio-pci'), (vf.numa_node, vf.kernel_driver))

    def test_mdev_types(self):
        host, _ = _build(self, 'mdev-gpus')
        types = host.mdev_types('0000:3b:00.0')
        self.assertEqual(['nvidia-222', 'nvidia-223'],
                         [t.name for t in types])
        self.assertEqual(('GRID T4-1B', 16, 'vfio-pci'),
                         (types[0].human_name, types[0].available_instances,
                          types[0].device_api))

    def test_no_mdev_types(self):
        host, _ = _build(self, 'pcie-8gpu-2socket')
        self.assertEqual((), host.mdev_types('0000:03:00.0'))

    def test_no_pci_bus(self):
        root = self.useFixture(fixtures.TempDir()).path
        host = sysfs_host.SysfsHost(root)
        self.assertEqual([], host.pci_addresses())
        self.assertEqual({}, host.numa_nodes())
        self.assertFalse(host.iommu_enabled())


class DeriveNumaNodeTest(testscenarios.WithScenarios, testtools.TestCase):

    NODES = {0: (0, 1, 2, 3), 1: (4, 5, 6, 7)}

    scenarios = [
        ('the kernel\'s answer wins',
         dict(node=1, cpus=(0, 1), nodes=NODES, expected=(1, 'numa_node'))),
        ('-1 and local CPUs on one node',
         dict(node=None, cpus=(4, 5, 6, 7), nodes=NODES,
              expected=(1, 'local_cpulist'))),
        ('-1 and local CPUs on two nodes',
         dict(node=None, cpus=(0, 1, 2, 3, 4, 5, 6, 7), nodes=NODES,
              expected=(None, ''))),
        ('-1 and local CPUs outside every node',
         dict(node=None, cpus=(3, 8), nodes=NODES, expected=(None, ''))),
        ('-1 and no local CPUs',
         dict(node=None, cpus=(), nodes=NODES, expected=(None, ''))),
        ('-1 and no NUMA nodes listed',
         dict(node=None, cpus=(0, 1), nodes={}, expected=(None, ''))),
    ]

    def test_derive(self):
        self.assertEqual(self.expected, sysfs_host.derive_numa_node(
            self.node, self.cpus, self.nodes))


class BrokenTreeTest(testtools.TestCase):
    """One bad device or attribute is recorded on that device; discovery
    of the others goes on."""

    def setUp(self):
        super().setUp()
        self.host, self.builder = _build(self, 'pcie-8gpu-2socket')
        self.gpu = '0000:03:00.0'
        self.gpu_dir = self.builder.dir_of(self.gpu)

    def _read_all(self):
        return {a: self.host.read_pci_device(a)
                for a in self.host.pci_addresses()}

    def test_vanished_device(self):
        # The bus link stays, the device directory is gone (hot unplug
        # between listing and reading).
        shutil.rmtree(self.gpu_dir)
        self.assertFalse(self.host.exists(self.gpu))
        devices = self._read_all()
        self.assertIn(self.gpu, devices)
        gone = devices[self.gpu]
        self.assertEqual('', gone.vendor_id)
        self.assertEqual(1, len(gone.errors))
        self.assertIn('vanished', gone.errors[0])
        self.assertEqual('10de', devices['0000:04:00.0'].vendor_id)

    def test_attribute_that_is_a_directory_is_unreadable(self):
        os.unlink(os.path.join(self.gpu_dir, 'vendor'))
        os.mkdir(os.path.join(self.gpu_dir, 'vendor'))
        dev = self.host.read_pci_device(self.gpu)
        self.assertEqual('', dev.vendor_id)
        self.assertEqual('2330', dev.product_id)
        [error] = dev.errors
        self.assertIn('vendor: unreadable', error)
        self.assertIn(self.gpu, error)

    def test_dangling_symlink_attribute_is_missing(self):
        path = os.path.join(self.gpu_dir, 'class')
        os.unlink(path)
        os.symlink('no-such-file', path)
        dev = self.host.read_pci_device(self.gpu)
        self.assertEqual('', dev.class_id)
        [error] = dev.errors
        self.assertIn('class: missing', error)

    def test_missing_optional_attributes_are_not_errors(self):
        for name in ('local_cpulist', 'numa_node', 'reset_method',
                     'current_link_speed'):
            os.unlink(os.path.join(self.gpu_dir, name))
        dev = self.host.read_pci_device(self.gpu)
        self.assertEqual((), dev.errors)
        self.assertEqual((None, (), ()), (dev.numa_node, dev.local_cpus,
                                          dev.reset_methods))

    def test_malformed_numa_node_is_a_device_error(self):
        self.builder.set_attr(self.gpu, 'numa_node', 'abc')
        devices = self._read_all()
        dev = devices[self.gpu]
        [error] = dev.errors
        self.assertIn('numa_node', error)
        self.assertIn("'abc'", error)
        # The local CPUs still tell the node.
        self.assertEqual((0, 'local_cpulist'), (dev.numa_node,
                                                dev.numa_source))
        self.assertEqual((), devices['0000:04:00.0'].errors)

    def test_iommu_group_link_to_a_name_that_is_no_number(self):
        link = os.path.join(self.gpu_dir, 'iommu_group')
        os.unlink(link)
        os.symlink('../../kernel/iommu_groups/bogus', link)
        dev = self.host.read_pci_device(self.gpu)
        self.assertIsNone(dev.iommu_group)
        [error] = dev.errors
        self.assertIn("'bogus' is not an IOMMU group number", error)

    def test_malformed_numa_node_cpulist_skips_that_node(self):
        log = self.useFixture(fixtures.FakeLogger())
        self.builder.numa_node(1, 'garbage')
        self.assertEqual({0: tuple(range(16))}, self.host.numa_nodes())
        self.assertIn("Ignoring NUMA node node1", log.output)
        self.assertIn("'garbage'", log.output)

    def test_malformed_mdev_type_attribute(self):
        log = self.useFixture(fixtures.FakeLogger())
        host, builder = _build(self, 'mdev-gpus')
        path = os.path.join(builder.dir_of('0000:3b:00.0'),
                            'mdev_supported_types', 'nvidia-222',
                            'available_instances')
        with open(path, 'w') as f:
            f.write('lots\n')
        types = host.mdev_types('0000:3b:00.0')
        self.assertEqual((0, 'GRID T4-1B'), (types[0].available_instances,
                                             types[0].human_name))
        self.assertEqual(8, types[1].available_instances)
        self.assertIn("'lots' is not an integer", log.output)


#: Text attributes of a PCI device and the parser each goes through.
ATTRIBUTES = {
    'vendor': parse.hex_id,
    'device': parse.hex_id,
    'class': parse.pci_class,
    'numa_node': parse.numa_node,
    'local_cpulist': parse.cpulist,
    'reset_method': parse.word_list,
    'current_link_speed': parse.text_value,
    'max_link_width': parse.text_value,
}

GARBAGE = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode('utf-8')),
    st.sampled_from([b'', b'\n', b'-1', b'(null)', b'abc', b'0x', b'-7',
                     b'9' * 5000, b'0-99999999', b'\xff\xfe', b'0x10de0',
                     b'3-1', b'0-3,', b'\x00' * 10]),
)


class GarbageTest(testtools.TestCase):
    """Random garbage in random attributes of random devices: every device
    is still returned, with what could not be read recorded on it."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())
        self.host, self.builder = _build(self, 'sriov-accelerator')
        self.addresses = self.host.pci_addresses()

    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=st.data())
    def test_every_device_is_returned_with_errors_recorded(self, data):
        writes = data.draw(st.lists(
            st.tuples(st.sampled_from(self.addresses),
                      st.sampled_from(sorted(ATTRIBUTES)), GARBAGE),
            min_size=1, max_size=6))
        saved = {}
        try:
            final = {}
            for address, name, garbage in writes:
                path = os.path.join(self.builder.dir_of(address), name)
                if path not in saved:
                    try:
                        with open(path, 'rb') as f:
                            saved[path] = f.read()
                    except FileNotFoundError:     # bridges: no reset_method
                        saved[path] = None
                with open(path, 'wb') as f:
                    f.write(garbage)
                final[(address, name)] = garbage
            self.assertEqual(self.addresses, self.host.pci_addresses())
            nodes = self.host.numa_nodes()
            devices = [self.host.read_pci_device(a, nodes)
                       for a in self.addresses]
        finally:
            for path, text in saved.items():
                if text is None:
                    os.unlink(path)
                    continue
                with open(path, 'wb') as f:
                    f.write(text)
        self.assertEqual(self.addresses, [d.address for d in devices])
        by_address = {d.address: d for d in devices}
        for (address, name), garbage in final.items():
            try:
                ATTRIBUTES[name](garbage)
            except ValueError:
                errors = by_address[address].errors
                self.assertTrue(
                    any(e.startswith(os.path.join(
                        os.path.relpath(self.builder.dir_of(address),
                                        self.host.root), name + ':'))
                        for e in errors),
                    '%s of %s = %r: no error recorded in %r'
                    % (name, address, garbage, errors))


class BuilderLayoutTest(testtools.TestCase):
    """The synthetic trees are laid out as the kernel lays sysfs out."""

    def test_bus_links_point_into_devices(self):
        root = self.useFixture(fixtures.TempDir()).path
        b = sysfs_builder.SysfsBuilder(root)
        b.device('0000:3b:00.0', kernel_driver='vfio-pci', iommu_group=7)
        link = os.path.join(root, 'bus', 'pci', 'devices', '0000:3b:00.0')
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.path.join(root, 'devices', 'pci0000:3b',
                                      '0000:3b:00.0'),
                         os.path.realpath(link))
        host = sysfs_host.SysfsHost(root)
        dev = host.read_pci_device('0000:3b:00.0')
        self.assertEqual(('vfio-pci', 7), (dev.kernel_driver,
                                           dev.iommu_group))
