"""Which guest holds which device, and claims: vGPU parents are shared."""

import fixtures
from oslo_config import cfg
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova import discovery
from cyborg_nova.drivers import mdev
from cyborg_nova import errors
from cyborg_nova.policy import inventory
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.fixtures import mdev_kernel
from cyborg_nova.virt_hooks import host_devices

GPU0 = '0000:3b:00.0'          # node 0, 8 vGPUs of nvidia-223
GPU1 = '0000:af:00.0'          # node 1
ROOT = 'root-provider'
VM1 = '9a2f3c1e-0d7b-4b7e-9d1a-3f1d2c4b5a60'
VM2 = '1b6c8e2a-5f3d-4c9e-8a7b-6d5e4f3a2b10'


def vgpus(count, node=1):
    rp = inventory.provider_uuid(ROOT,
                                 'VGPU_10de_1eb8_nvidia-223_NUMA%d' % node)
    return {rp: {'resources': {'VGPU': count}}}


class VGPUHostTestCase(testtools.TestCase):
    """Two vGPU parents (one per NUMA node) and the real mdev driver on
    an emulated kernel."""

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        hosts.mdev_gpus(self.root)
        conf = cfg.ConfigOpts()
        cn_conf.register_opts(conf)
        conf([], default_config_files=[], default_config_dirs=[])
        conf.set_override('enabled_mdev_types', ['nvidia-223'],
                          'accelerator')
        self.driver = mdev.MdevDriver(
            discovery.make_context(conf, sysfs_root=self.root))
        self.kernel = mdev_kernel.EmulatedKernel(self.root)
        self.driver.devices.sysfs = self.kernel
        self.host = host_devices.HostDevices(
            conf, drivers={'mdev': self.driver}, sysfs_root=self.root)
        self.host.refresh()


class VGPUClaimTest(VGPUHostTestCase):

    def claim(self, instance, count, guests=None, keep=()):
        return [d.address for d in self.host.claim(
            instance, vgpus(count), ROOT, guests or {}, keep=keep)]

    def test_one_parent_serves_several_vgpus_of_one_instance(self):
        self.assertEqual([GPU1, GPU1], self.claim(VM1, 2))
        self.assertEqual([GPU1, GPU1], self.host.pending(VM1))

    def test_other_guests_and_claims_share_the_parent(self):
        self.assertEqual([GPU1], self.claim(VM1, 1, {VM2: [GPU1] * 6}))
        # VM1's claim is in progress: one vGPU left of 8.
        self.assertEqual([GPU1], self.claim('vm-3', 1, {VM2: [GPU1] * 6}))
        exc = self.assertRaises(errors.NoFreeDevice, self.claim, 'vm-4', 1,
                                {VM2: [GPU1] * 6})
        self.assertIn('locality group VGPU_10de_1eb8_nvidia-223_NUMA1 has '
                      '0 free vGPU(s) but Placement allocated 1', str(exc))
        self.assertEqual([], self.host.pending('vm-4'))

    def test_the_instance_keeps_the_vgpus_it_holds(self):
        full = {VM2: [GPU1] * 7, VM1: [GPU1]}
        self.assertEqual([GPU1], self.claim(VM1, 1, full))
        self.assertEqual([GPU1], self.claim(VM1, 1, {VM2: [GPU1] * 7},
                                            keep=[GPU1]))

    def test_a_parent_another_guest_uses_is_still_picked(self):
        # The held set names the parent (a PGPU claim would skip it); a
        # VGPU claim counts vGPUs instead.
        self.assertEqual({GPU1}, self.host.held({VM2: [GPU1]}))
        self.assertEqual([GPU1], self.claim(VM1, 1, {VM2: [GPU1]}))

    def test_groups_count_vgpus_of_guests_claims_and_sysfs(self):
        self.claim(VM1, 2)
        by_node = {g.key.numa_node: g for g in self.host.groups(
            {VM2: [GPU1, GPU0]})}
        self.assertEqual((8, 1), (by_node[0].total, by_node[0].in_use))
        self.assertEqual((8, 3), (by_node[1].total, by_node[1].in_use))

    def test_a_hard_reboot_hold_does_not_count_twice(self):
        self.host.hold(VM1, [GPU1])
        self.assertEqual({GPU1: 2}, dict(self.host.vgpus_held(
            {VM1: [GPU1], VM2: [GPU1]})))

    def test_mdev_parent_from_sysfs_then_from_the_uuid(self):
        made = self.driver.ensure(self.host.by_address()[GPU1], VM1, 0)
        self.assertEqual(GPU1, self.host.mdev_parent(VM1, made.uuid))
        self.kernel.reboot()                    # the mdev is gone
        self.assertEqual(GPU1, self.host.mdev_parent(VM1, made.uuid))
        self.assertIsNone(self.host.mdev_parent(VM2, made.uuid))


class EnsureTest(VGPUHostTestCase):
    """MdevDriver.ensure: every XML rebuild asks again for the same mdev."""

    def test_ensure_reuses_then_recreates(self):
        parent = self.host.by_address()[GPU1]
        first = self.driver.ensure(parent, VM1, 0)
        self.assertEqual(mdev.mdev_uuid(VM1, GPU1, 0), first.uuid)
        self.assertEqual(first, self.driver.ensure(parent, VM1, 0))
        self.assertEqual(1, len([w for w in self.kernel.writes
                                 if w[0].endswith('/create')]))
        second = self.driver.ensure(parent, VM1, 1)
        self.assertEqual(mdev.mdev_uuid(VM1, GPU1, 1), second.uuid)
        self.kernel.reboot()
        self.assertEqual(first, self.driver.ensure(parent, VM1, 0))
        self.assertEqual(
            [first.uuid], mdev_kernel.EmulatedMdevKernel.mdevs(self.root))
