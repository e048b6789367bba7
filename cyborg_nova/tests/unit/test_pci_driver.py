"""The generic PCI driver: ``cyborg_nova.drivers.pci``."""

import os
import shutil

import fixtures
import os_resource_classes as orc
from oslo_config import cfg
from oslo_config import fixture as config_fixture
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova import device
from cyborg_nova.drivers import base
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.tests.fixtures import hosts

H100_ROOT = hosts.captured_host('h100-1gpu-vm')
GPUS_8 = ('0000:03:00.0', '0000:04:00.0', '0000:07:00.0', '0000:08:00.0',
          '0000:83:00.0', '0000:84:00.0', '0000:87:00.0', '0000:88:00.0')


def make_conf(test, **accelerator):
    """A private config object (never the global CONF) with *accelerator*
    options set."""
    conf = cfg.ConfigOpts()
    cn_conf.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[],
         default_config_dirs=[])
    fix = test.useFixture(config_fixture.Config(conf))
    if accelerator:
        fix.config(group='accelerator', **accelerator)
    return conf


class DriverTestCase(testtools.TestCase):

    host = 'pcie-8gpu-2socket'

    def driver(self, root=None, **accelerator):
        if root is None:
            root = self.useFixture(fixtures.TempDir()).path
            self.builder = hosts.SYNTHETIC_HOSTS[self.host](root)
        self.root = root
        return pci.PciDriver(base.HostContext(
            sysfs_root=root, conf=make_conf(self, **accelerator)))


class DiscoverTest(DriverTestCase):

    def test_eight_gpus_found_assignable(self):
        found = self.driver().discover()
        self.assertEqual(list(GPUS_8), [d.address for d in found])
        for dev in found:
            self.assertEqual(('pci', orc.PGPU, True, ()),
                             (dev.driver, dev.resource_class, dev.allowed,
                              dev.reasons), dev.address)
            self.assertTrue(dev.assignable)

    def test_traits_name_identity_and_numa_node(self):
        found = {d.address: d for d in self.driver().discover()}
        self.assertEqual(
            {'CUSTOM_PCI_VENDOR_10DE', 'CUSTOM_PCI_PRODUCT_10DE_2330',
             'CUSTOM_ACCEL_NUMA_NODE_1'}, found['0000:84:00.0'].traits)
        self.assertIn('CUSTOM_ACCEL_NUMA_NODE_0',
                      found['0000:03:00.0'].traits)

    def test_bridges_and_host_devices_are_left_out(self):
        found = [d.address for d in self.driver().discover()]
        self.assertNotIn('0000:00:1f.0', found)      # the host NIC
        self.assertNotIn('0000:00:01.0', found)      # a root port

    def test_an_allowed_nic_is_reported_with_its_reasons(self):
        found = {d.address: d for d in self.driver(
            allowed_devices=['15b3:1017']).discover()}
        nic = found['0000:00:1f.0']
        self.assertEqual(orc.PCI_DEVICE, nic.resource_class)
        self.assertTrue(nic.allowed)
        self.assertFalse(nic.assignable)
        self.assertIn("'mlx5_core'", ' '.join(nic.reasons))

    def test_a_denied_gpu_is_reported_not_assignable(self):
        found = {d.address: d for d in self.driver(
            denied_addresses=['0000:03:00.0']).discover()}
        denied = found['0000:03:00.0']
        self.assertFalse(denied.allowed)
        self.assertEqual(('listed in [accelerator] denied_addresses',),
                         denied.reasons)
        self.assertTrue(found['0000:04:00.0'].assignable)

    def test_gpus_outside_the_allowed_classes_are_shown_not_offered(self):
        found = self.driver(allowed_classes=[]).discover()
        self.assertEqual(8, len(found))
        for dev in found:
            self.assertFalse(dev.allowed)
            self.assertIn('allowed_classes', dev.reasons[0])

    def test_resource_class_override(self):
        found = self.driver(
            resource_classes=['10DE:2330=CUSTOM_ACCEL_H100']).discover()
        self.assertEqual({'CUSTOM_ACCEL_H100'},
                         {d.resource_class for d in found})

    def test_describe_all_lists_every_pci_device(self):
        every = self.driver().describe_all()
        # Per socket: a host bridge, 2 switches of a root port, an upstream
        # port, 2 downstream ports and 2 GPUs; and one NIC.
        self.assertEqual(2 * (1 + 2 * 6) + 1, len(every))
        self.assertEqual(sorted(d.address for d in every),
                         [d.address for d in every])
        nic = [d for d in every if d.address == '0000:00:1f.0'][0]
        self.assertFalse(nic.allowed)


class SharedIommuGroupTest(DriverTestCase):

    host = 'gpu-shares-iommu-group-with-nic'

    def test_gpu_sharing_a_group_with_a_nic_is_not_assignable(self):
        [gpu] = self.driver().discover()
        self.assertFalse(gpu.assignable)
        [reason] = gpu.reasons
        self.assertIn('0000:01:00.1 (class 020000, driver i40e)', reason)


class SriovTest(DriverTestCase):

    host = 'sriov-accelerator'

    def test_vfs_are_assignable_the_pf_is_not(self):
        found = {d.address: d for d in self.driver().discover()}
        self.assertEqual(5, len(found))
        pf = found.pop('0000:81:00.0')
        self.assertFalse(pf.assignable)
        self.assertIn('SR-IOV physical function with 4 VFs',
                      ' '.join(pf.reasons))
        for vf in found.values():
            self.assertEqual((orc.FPGA, '0000:81:00.0', True),
                             (vf.resource_class, vf.physfn, vf.assignable))


class CpuOnlyTest(DriverTestCase):

    host = 'cpu-only'

    def test_nothing_to_offer(self):
        drv = self.driver()
        self.assertEqual([], drv.discover())
        self.assertEqual(3, len(drv.describe_all()))


class CapturedH100Test(DriverTestCase):

    def setUp(self):
        super().setUp()
        if not os.path.isdir(H100_ROOT):
            self.skipTest('the h100-1gpu-vm capture is not in this tree')

    def test_the_gpu_is_found_and_says_why_it_is_not_assignable(self):
        [gpu] = self.driver(root=H100_ROOT).discover()
        self.assertEqual(('0000:00:06.0', orc.PGPU, 0, None, 'nvidia'),
                         (gpu.address, gpu.resource_class, gpu.numa_node,
                          gpu.iommu_group, gpu.kernel_driver))
        self.assertEqual(2, len(gpu.reasons))
        self.assertIn('no IOMMU groups on this host', gpu.reasons[0])
        self.assertIn("bound to kernel driver 'nvidia'", gpu.reasons[1])

    def test_without_the_iommu_requirement_only_the_driver_remains(self):
        [gpu] = self.driver(root=H100_ROOT, require_iommu=False).discover()
        [reason] = gpu.reasons
        self.assertIn('nvidia', reason)

    def test_virtio_devices_are_not_accelerators(self):
        every = self.driver(root=H100_ROOT).describe_all()
        self.assertEqual(7, len(every))
        others = [d for d in every if d.address != '0000:00:06.0']
        for dev in others:
            self.assertEqual(orc.PCI_DEVICE, dev.resource_class, dev.address)
            self.assertFalse(dev.allowed, dev.address)


class AttachTest(DriverTestCase):

    def test_attach_gives_the_pci_address(self):
        drv = self.driver()
        dev = drv.discover()[0]
        self.assertEqual(device.PciHostdev(address=dev.address),
                         drv.attach(dev, 'c0ffee'))

    def test_attach_refuses_a_device_that_is_not_assignable(self):
        drv = self.driver(denied_addresses=['0000:03:00.0'])
        dev = drv.discover()[0]
        exc = self.assertRaises(errors.NotAssignable, drv.attach, dev,
                                'c0ffee')
        self.assertEqual(dev.reasons, exc.reasons)
        self.assertIn('0000:03:00.0', str(exc))

    def test_attach_refuses_a_device_that_vanished(self):
        drv = self.driver()
        dev = drv.discover()[0]
        shutil.rmtree(self.builder.dir_of(dev.address))
        exc = self.assertRaises(errors.DeviceNotFound, drv.attach, dev,
                                'c0ffee')
        self.assertIn('vanished', str(exc))
        self.assertIn(dev.address, str(exc))

    def test_plugin_identity(self):
        self.assertEqual(('pci', 0, False), (pci.PciDriver.name,
                                             pci.PciDriver.specificity,
                                             pci.PciDriver.tuning))
