"""vGPU parents and their mdevs: ``cyborg_nova.drivers.mdev``."""

import errno
import os

import fixtures
import os_resource_classes as orc
from oslo_config import cfg
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova import device as device_mod
from cyborg_nova import discovery
from cyborg_nova.drivers import base
from cyborg_nova.drivers import mdev
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.sysfs import host as sysfs_host
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import mdev_kernel

GPU0 = '0000:3b:00.0'          # node 0
GPU1 = '0000:af:00.0'          # node 1
INSTANCE = '9a2f3c1e-0d7b-4b7e-9d1a-3f1d2c4b5a60'
OTHER = '1b6c8e2a-5f3d-4c9e-8a7b-6d5e4f3a2b10'


class MdevTestCase(testtools.TestCase):

    enabled = ['nvidia-223']

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.builder = hosts.mdev_gpus(self.root)
        self.conf = cfg.ConfigOpts()
        cn_conf.register_opts(self.conf)
        self.conf([], default_config_files=[], default_config_dirs=[])
        self.conf.set_override('enabled_mdev_types', self.enabled,
                               'accelerator')
        self.context = base.HostContext(sysfs_root=self.root, conf=self.conf)
        self.kernel = mdev_kernel.EmulatedKernel(self.root)
        self.driver = self.make_driver()

    def make_driver(self, enabled=None):
        if enabled is not None:
            self.conf.set_override('enabled_mdev_types', enabled,
                                   'accelerator')
        driver = mdev.MdevDriver(self.context)
        driver.devices.sysfs = self.kernel
        return driver

    def parent(self, address=GPU1):
        return {d.address: d for d in self.driver.discover()}[address]

    def mdevs(self):
        return sorted(os.listdir(self.kernel.path('bus', 'mdev', 'devices')))


class DiscoverTest(MdevTestCase):

    def test_parents_are_vgpu_providers(self):
        found = self.driver.discover()
        self.assertEqual([GPU0, GPU1], [d.address for d in found])
        gpu = found[1]
        self.assertEqual(orc.VGPU, gpu.resource_class)
        self.assertEqual('mdev', gpu.driver)
        self.assertEqual(1, gpu.numa_node)
        self.assertEqual({'mdev_type': 'nvidia-223', 'vgpu_capacity': 8,
                          'vgpu_used': 0}, gpu.capabilities)
        self.assertEqual(
            (device_mod.MdevType('nvidia-222', 'GRID T4-1B', 16, 'vfio-pci'),
             device_mod.MdevType('nvidia-223', 'GRID T4-2B', 8, 'vfio-pci')),
            gpu.mdev_types)
        self.assertEqual({'CUSTOM_PCI_VENDOR_10DE',
                          'CUSTOM_PCI_PRODUCT_10DE_1EB8',
                          'CUSTOM_ACCEL_NUMA_NODE_1',
                          'CUSTOM_MDEV_TYPE_NVIDIA_223'}, set(gpu.traits))

    def test_parent_bound_to_its_host_driver_is_assignable(self):
        gpu = self.parent()
        self.assertEqual('nvidia', gpu.kernel_driver)
        self.assertEqual((), gpu.reasons)
        self.assertTrue(gpu.assignable)

    def test_other_rules_still_apply(self):
        self.builder.set_attr(GPU1, 'reset_method', None)
        self.assertIn('cannot be reset between tenants',
                      self.parent().reasons[0])

    def test_nothing_enabled_nothing_offered(self):
        self.assertEqual([], self.make_driver([]).discover())

    def test_types_no_device_offers_are_ignored(self):
        self.assertEqual([], self.make_driver(['i915-GVTg_V5_4']).discover())

    def test_the_first_enabled_type_a_device_offers(self):
        self.driver = self.make_driver(
            ['i915-GVTg_V5_4', 'nvidia-222', 'nvidia-223'])
        gpu = self.parent()
        self.assertEqual('nvidia-222', gpu.capabilities['mdev_type'])
        self.assertEqual(16, gpu.capabilities['vgpu_capacity'])
        self.assertIn('CUSTOM_MDEV_TYPE_NVIDIA_222', gpu.traits)
        self.assertNotIn('CUSTOM_MDEV_TYPE_NVIDIA_223', gpu.traits)

    def test_a_type_already_in_use_wins(self):
        self.driver.attach(self.parent(GPU1), INSTANCE)       # nvidia-223
        driver = self.make_driver(['nvidia-222', 'nvidia-223'])
        types = {d.address: d.capabilities['mdev_type']
                 for d in driver.discover()}
        self.assertEqual({GPU0: 'nvidia-222', GPU1: 'nvidia-223'}, types)

    def test_capacity_counts_mdevs_in_use(self):
        self.driver.attach(self.parent(), INSTANCE)
        gpu = self.parent()
        self.assertEqual(8, gpu.capabilities['vgpu_capacity'])
        self.assertEqual(1, gpu.capabilities['vgpu_used'])
        self.assertEqual(7, gpu.mdev_types[1].available_instances)

    def test_mdev_driver_wins_over_the_pci_driver(self):
        found = discovery.discover(self.context, drivers={
            'pci': pci.PciDriver(self.context), 'mdev': self.driver})
        self.assertEqual({GPU0: orc.VGPU, GPU1: orc.VGPU},
                         {d.address: d.resource_class for d in found.devices})
        self.assertEqual({}, found.failures)


class AttachDetachTest(MdevTestCase):

    def test_attach_creates_an_mdev(self):
        hostdev = self.driver.attach(self.parent(), INSTANCE)
        expected_uuid = mdev.mdev_uuid(INSTANCE, GPU1, 0)
        self.assertEqual(device_mod.MdevHostdev(expected_uuid, 'nvidia-223',
                                                GPU1), hostdev)
        self.assertEqual([expected_uuid], self.mdevs())
        [(path, text)] = self.kernel.writes
        self.assertEqual(expected_uuid, text)
        self.assertTrue(path.endswith(
            '/%s/mdev_supported_types/nvidia-223/create' % GPU1), path)

    def test_the_uuid_is_what_was_written_without_emulation(self):
        self.driver.devices.sysfs = sysfs_host.SysfsHost(self.root)
        hostdev = self.driver.attach(self.parent(), INSTANCE)
        path = os.path.join(self.builder.dir_of(GPU1),
                            'mdev_supported_types', 'nvidia-223', 'create')
        with open(path) as f:
            self.assertEqual(hostdev.uuid, f.read())

    def test_a_second_mdev_for_one_instance_gets_the_next_uuid(self):
        gpu = self.parent()
        first = self.driver.attach(gpu, INSTANCE)
        second = self.driver.attach(gpu, INSTANCE)
        self.assertEqual(mdev.mdev_uuid(INSTANCE, GPU1, 1), second.uuid)
        self.assertEqual(sorted([first.uuid, second.uuid]), self.mdevs())

    def test_detach_removes_only_the_instance_mdevs(self):
        gpu = self.parent()
        mine = [self.driver.attach(gpu, INSTANCE).uuid for _ in range(2)]
        theirs = self.driver.attach(gpu, OTHER).uuid
        on_other_gpu = self.driver.attach(self.parent(GPU0), INSTANCE).uuid
        self.kernel.writes.clear()
        self.driver.detach(gpu, INSTANCE)
        self.assertEqual(sorted([theirs, on_other_gpu]), self.mdevs())
        self.assertEqual(
            sorted((os.path.join('bus', 'mdev', 'devices', u, 'remove'), '1')
                   for u in mine), sorted(self.kernel.writes))
        self.assertEqual(7, self.parent().mdev_types[1].available_instances)

    def test_detach_without_mdevs_does_nothing(self):
        self.driver.detach(self.parent(), INSTANCE)
        self.assertEqual([], self.kernel.writes)

    def test_remove_mdev_is_idempotent(self):
        hostdev = self.driver.attach(self.parent(), INSTANCE)
        self.assertTrue(self.driver.remove_mdev(hostdev.uuid))
        self.assertFalse(self.driver.remove_mdev(hostdev.uuid))
        self.assertEqual([], self.mdevs())

    def test_setup_checks_and_writes_nothing(self):
        self.driver.setup(self.parent())
        self.assertEqual([], self.kernel.writes)


class ErrorsTest(MdevTestCase):

    def test_type_unknown(self):
        gpu = self.parent()
        gpu.capabilities['mdev_type'] = 'nvidia-999'
        exc = self.assertRaises(errors.MdevTypeUnknown, self.driver.attach,
                                gpu, INSTANCE)
        self.assertEqual(
            '0000:af:00.0 does not offer mdev type nvidia-999 (it offers: '
            'nvidia-222, nvidia-223); check [accelerator] '
            'enabled_mdev_types and that the vGPU host driver is loaded',
            str(exc))
        self.assertEqual((GPU1, 'nvidia-999'), (exc.parent, exc.mdev_type))
        self.assertEqual([], self.kernel.writes)

    def test_no_available_instances(self):
        gpu = self.parent()
        for _ in range(8):
            self.driver.attach(gpu, INSTANCE)
        for call in (self.driver.setup,
                     lambda dev: self.driver.attach(dev, OTHER)):
            exc = self.assertRaises(errors.MdevUnavailable, call, gpu)
            self.assertEqual(
                '0000:af:00.0 has no instance of mdev type nvidia-223 left '
                '(8 in use); free one or place the guest on another GPU',
                str(exc))

    def test_write_refused(self):
        self.kernel.refuse = errno.EBUSY
        exc = self.assertRaises(errors.MdevWriteFailed, self.driver.attach,
                                self.parent(), INSTANCE)
        self.assertIn('could not create mdev %s of type nvidia-223 on '
                      '0000:af:00.0: writing ' % mdev.mdev_uuid(
                          INSTANCE, GPU1), str(exc))
        self.assertIn('/mdev_supported_types/nvidia-223/create failed '
                      '(Device or resource busy); check the host driver\'s '
                      'log (dmesg)', str(exc))
        self.assertIsInstance(exc, errors.DriverError)

    def test_remove_refused(self):
        hostdev = self.driver.attach(self.parent(), INSTANCE)
        self.kernel.refuse = errno.EBUSY
        exc = self.assertRaises(errors.MdevWriteFailed,
                                self.driver.remove_mdev, hostdev.uuid)
        self.assertIn('could not remove mdev %s' % hostdev.uuid, str(exc))
        self.assertIn('stop the guest, then retry', str(exc))

    def test_not_assignable(self):
        self.builder.set_attr(GPU1, 'reset_method', None)
        self.assertRaises(errors.NotAssignable, self.driver.attach,
                          self.parent(), INSTANCE)

    def test_parent_vanished(self):
        gpu = self.parent()
        os.unlink(self.kernel.path('bus', 'pci', 'devices', GPU1))
        exc = self.assertRaises(errors.DeviceNotFound, self.driver.attach,
                                gpu, INSTANCE)
        self.assertIn('device 0000:af:00.0 is no longer on this host',
                      str(exc))


class EnsureTest(MdevTestCase):
    """``ensure``: what every build of a vGPU guest's XML calls."""

    def test_first_call_creates_the_derived_uuid(self):
        made = self.driver.ensure(self.parent(), INSTANCE, 1)
        self.assertEqual(mdev.mdev_uuid(INSTANCE, GPU1, 1), made.uuid)
        self.assertEqual([made.uuid], self.mdevs())

    def test_an_existing_mdev_is_reused_without_writing(self):
        made = self.driver.ensure(self.parent(), INSTANCE, 0)
        self.kernel.writes.clear()
        self.assertEqual(made, self.driver.ensure(self.parent(), INSTANCE, 0))
        self.assertEqual([], self.kernel.writes)

    def test_after_a_host_reboot_the_same_mdevs_come_back(self):
        made = [self.driver.ensure(self.parent(a), INSTANCE, 0)
                for a in (GPU0, GPU1)]
        self.kernel.reboot()
        self.assertEqual([], self.mdevs())
        again = [self.driver.ensure(self.parent(a), INSTANCE, 0)
                 for a in (GPU0, GPU1)]
        self.assertEqual(made, again)
        self.assertEqual(sorted(m.uuid for m in made), self.mdevs())

    def test_a_parent_no_longer_assignable_gets_no_new_mdev(self):
        gpu = self.parent()
        gpu.reasons = ('shares IOMMU group 7 with 0000:00:1f.0',)
        exc = self.assertRaises(errors.NotAssignable, self.driver.ensure,
                                gpu, INSTANCE, 0)
        self.assertIn('0000:af:00.0', str(exc))
        self.assertEqual([], self.kernel.writes)


class MdevUuidTest(testtools.TestCase):

    def test_stable_and_distinct(self):
        self.assertEqual(mdev.mdev_uuid(INSTANCE, GPU0),
                         mdev.mdev_uuid(INSTANCE, GPU0, 0))
        uuids = {mdev.mdev_uuid(i, p, n) for i in (INSTANCE, OTHER)
                 for p in (GPU0, GPU1) for n in range(3)}
        self.assertEqual(12, len(uuids))

    def test_type_trait(self):
        self.assertEqual('CUSTOM_MDEV_TYPE_NVIDIA_222',
                         mdev.type_trait('nvidia-222'))
        self.assertEqual('CUSTOM_MDEV_TYPE_I915_GVTG_V5_4',
                         mdev.type_trait('i915-GVTg_V5_4'))
