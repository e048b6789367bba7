"""The NVIDIA driver (``cyborg_nova.drivers.nvidia``) on captured and
synthetic hosts, with NVML faked from recorded answers."""

import logging
import os

import fixtures
from oslo_config import cfg
import testscenarios
import testtools

from cyborg_nova import conf as conf_mod
from cyborg_nova import device as device_mod
from cyborg_nova import discovery
from cyborg_nova.drivers import base
from cyborg_nova.drivers import nvidia
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.tests.fixtures import fake_nvml
from cyborg_nova.tests.fixtures import hosts

H100 = '0000:00:06.0'
DGX = fake_nvml.DGX_BUS_IDS
SWITCHES = sorted(a.lower() for a in fake_nvml.DGX_NVSWITCH_BUS_IDS)
CC_9_0 = 'CUSTOM_HW_GPU_CUDA_COMPUTE_CAPABILITY_V9_0'


def make_conf(**overrides):
    conf = cfg.ConfigOpts()
    conf_mod.register_opts(conf)
    conf([], project='cyborg-nova', default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group='accelerator')
    return conf


class DriverTestBase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG, name='cyborg_nova'))

    def driver(self, sysfs_root, nvml, **conf):
        return nvidia.NvidiaDriver(base.HostContext(
            sysfs_root=sysfs_root, conf=make_conf(**conf), nvml=nvml))

    def synthetic(self, build=hosts.pcie_8gpu_2socket, nvidia_bound=(),
                  reset=()):
        """A synthetic host; *nvidia_bound* GPUs rebound to ``nvidia``;
        *reset* GPUs get a sysfs ``reset`` attribute."""
        root = self.useFixture(fixtures.TempDir()).path
        builder = build(root)
        for address in nvidia_bound:
            builder.bind(address, 'nvidia')
        for address in reset:
            builder.set_attr(address, 'reset', '0')
        self.builder = builder
        return root

    @staticmethod
    def by_address(devices):
        return {d.address: d for d in devices}


class CapturedH100Test(DriverTestBase):
    """The real H100 capture, with NVML answering as it did there."""

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.from_capture()
        self.drv = self.driver(hosts.captured_host('h100-1gpu-vm'),
                               self.fake)
        self.devices = self.drv.discover()

    def test_only_the_gpu_is_reported(self):
        self.assertEqual([H100], [d.address for d in self.devices])

    def test_described_from_nvml(self):
        dev = self.devices[0]
        self.assertEqual('NVIDIA H100 80GB HBM3', dev.name)
        self.assertEqual('nvidia', dev.driver)
        self.assertEqual(81559, dev.capabilities['memory_mb'])
        self.assertEqual('9.0', dev.capabilities['cuda_compute_capability'])
        self.assertIn(CC_9_0, dev.traits)
        self.assertEqual('GPU-8ad4f6e1-5cdc-f047-fa32-f0f1c1ab14aa',
                         dev.capabilities['uuid'])
        self.assertTrue(dev.capabilities['mig_capable'])
        self.assertFalse(dev.capabilities['mig_enabled'])
        self.assertNotIn(nvidia.MIG_ENABLED_TRAIT, dev.traits)
        self.assertEqual('nvml', dev.capabilities['health_source'])
        self.assertEqual((), dev.errors)

    def test_no_nvlink_on_this_gpu(self):
        dev = self.devices[0]
        self.assertNotIn('nvlink_peers', dev.capabilities)
        self.assertNotIn(nvidia.NVLINK_TRAIT, dev.traits)

    def test_healthy_and_idle(self):
        dev = self.devices[0]
        self.assertEqual(device_mod.Health.ok(), dev.health)
        self.assertEqual(0.0, dev.utilization.compute_percent)
        self.assertLess(dev.utilization.memory_percent, 1.0)

    def test_numa_node_from_local_cpulist(self):
        dev = self.devices[0]
        self.assertEqual((0, 'local_cpulist'), (dev.numa_node,
                                                dev.numa_source))

    def test_not_assignable_no_iommu_and_bound_to_nvidia(self):
        dev = self.devices[0]
        self.assertFalse(dev.assignable)
        self.assertEqual(2, len(dev.reasons))
        self.assertIn('no IOMMU groups on this host', dev.reasons[0])
        self.assertIn("bound to kernel driver 'nvidia'", dev.reasons[1])

    def test_attach_refuses_naming_address_and_reasons(self):
        error = self.assertRaises(errors.NotAssignable, self.drv.attach,
                                  self.devices[0], 'inst-1')
        self.assertIn(H100, str(error))
        self.assertIn('no IOMMU groups', str(error))

    def test_mig_enabled_adds_a_trait(self):
        self.fake.set_answer(H100, 'mig_mode', [1, 1])
        dev = self.drv.discover()[0]
        self.assertTrue(dev.capabilities['mig_enabled'])
        self.assertIn('CUSTOM_NVIDIA_MIG_ENABLED', dev.traits)

    def test_fresh_readings(self):
        self.fake.set_answer(H100, 'utilization', {'gpu': 40, 'memory': 9})
        self.assertEqual(40.0,
                         self.drv.utilization(self.devices[0]).compute_percent)
        self.fake.set_answer(H100, 'ecc_uncorrected_volatile', 1)
        health = self.drv.health(self.devices[0])
        self.assertFalse(health.healthy)
        self.assertIn('1 uncorrected ECC error', health.reason)

    def test_lost_after_discovery(self):
        self.fake.fail_device(H100)
        health = self.drv.health(self.devices[0])
        self.assertIn('GPU is lost', health.reason)
        self.assertIsNone(self.drv.utilization(self.devices[0]))

    def test_one_failing_nvml_call_is_a_device_error(self):
        self.fake.set_answer(H100, 'memory',
                             {'error': 'NVMLError_Unknown: Unknown Error'})
        dev = self.driver(hosts.captured_host('h100-1gpu-vm'),
                          self.fake).discover()[0]
        self.assertNotIn('memory_mb', dev.capabilities)
        self.assertTrue(dev.healthy)
        self.assertIn('NVML nvmlDeviceGetMemoryInfo failed for '
                      '0000:00:06.0: Unknown Error', dev.errors)


class XidTest(DriverTestBase):
    """XID events make a GPU unhealthy until it is reset."""

    GPU = '0000:03:00.0'

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.dgx_h100()

    def discover(self, reset=(GPU,), **conf):
        root = self.synthetic(nvidia_bound=DGX, reset=reset)
        self.drv = self.driver(root, self.fake, **conf)
        return self.by_address(self.drv.discover())

    def test_critical_xid_is_sticky_until_reset(self):
        dev = self.discover()[self.GPU]
        self.fake.inject_xid(self.GPU, 79)
        for _ in range(2):
            health = self.drv.health(dev)
            self.assertFalse(health.healthy)
            self.assertTrue(health.reason.startswith(
                'XID 79 (GPU has fallen off the bus) at '), health.reason)
        self.assertIn('GPU 0000:03:00.0: XID 79', self.log.output)
        self.drv.uninstall(dev)
        with open(os.path.join(self.builder.dir_of(self.GPU),
                               'reset')) as f:
            self.assertEqual('1', f.read())
        self.assertTrue(self.drv.health(dev).healthy)

    def test_xid_of_one_gpu_leaves_the_others_healthy(self):
        devices = self.discover()
        self.fake.inject_xid('0000:84:00.0', 48)
        self.assertFalse(self.drv.health(devices['0000:84:00.0']).healthy)
        for address in set(DGX) - {'0000:84:00.0'}:
            self.assertTrue(self.drv.health(devices[address]).healthy)

    def test_application_xids_are_ignored(self):
        dev = self.discover()[self.GPU]
        for xid in (13, 31, 43, 45, 68, 109):
            self.fake.inject_xid(self.GPU, xid)
        self.assertTrue(self.drv.health(dev).healthy)

    def test_operator_ignored_xids(self):
        dev = self.discover(nvidia_ignored_xids=[74])
        self.fake.inject_xid(self.GPU, 74)
        self.assertTrue(self.drv.health(dev[self.GPU]).healthy)
        self.fake.inject_xid(self.GPU, 13)
        health = self.drv.health(dev[self.GPU])
        self.assertIn('XID 13 (graphics engine exception)', health.reason)

    def test_without_reset_attribute_the_xid_stays(self):
        dev = self.discover(reset=())[self.GPU]
        self.fake.inject_xid(self.GPU, 79)
        self.drv.uninstall(dev)
        self.assertFalse(self.drv.health(dev).healthy)
        self.assertIn('cannot be reset between tenants', self.log.output)

    def test_failed_reset_names_the_path(self):
        dev = self.discover(reset=())[self.GPU]
        os.mkdir(os.path.join(self.builder.dir_of(self.GPU), 'reset'))
        self.fake.inject_xid(self.GPU, 79)
        error = self.assertRaises(errors.DriverError, self.drv.uninstall, dev)
        self.assertIn('resetting GPU 0000:03:00.0 failed: writing 1 to ',
                      str(error))
        self.assertFalse(self.drv.health(dev).healthy)

    def test_remapped_row_failures_allowed_by_the_operator(self):
        self.fake.set_answer(self.GPU, 'remapped_rows', [0, 0, 0, 1])
        self.assertFalse(self.discover()[self.GPU].healthy)
        self.assertTrue(self.discover(
            nvidia_max_remapped_rows_failures=1)[self.GPU].healthy)


class DgxTest(DriverTestBase):
    """8 H100 SXM5 on NVSwitches, bound to nvidia."""

    def setUp(self):
        super().setUp()
        self.fake = fake_nvml.dgx_h100()
        self.root = self.synthetic(nvidia_bound=DGX)

    def test_every_gpu_reaches_the_seven_others(self):
        devices = self.driver(self.root, self.fake).discover()
        self.assertEqual(list(DGX), [d.address for d in devices])
        for dev in devices:
            caps = dev.capabilities
            self.assertEqual(sorted(set(DGX) - {dev.address}),
                             caps['nvlink_peers'])
            self.assertEqual('0000:03:00.0', caps['nvlink_island'])
            self.assertEqual(18, caps['nvlink_links'])
            self.assertEqual(SWITCHES, caps['nvswitches'])
            self.assertIn(nvidia.NVLINK_TRAIT, dev.traits)
            self.assertTrue(dev.healthy)

    def test_a_lost_gpu_is_unhealthy_the_others_are_not(self):
        self.fake.fail_device('0000:04:00.0')
        devices = self.by_address(self.driver(self.root,
                                              self.fake).discover())
        lost = devices.pop('0000:04:00.0')
        self.assertFalse(lost.healthy)
        self.assertIn('GPU is lost', lost.health.reason)
        self.assertEqual('NVIDIA H100 80GB HBM3', lost.name)
        for dev in devices.values():
            self.assertTrue(dev.healthy)
            self.assertEqual(6, len(dev.capabilities['nvlink_peers']))

    def test_nvidia_wins_over_the_generic_pci_driver(self):
        context = base.HostContext(sysfs_root=self.root, conf=make_conf(),
                                   nvml=self.fake)
        found = discovery.discover(context, drivers={
            'pci': pci.PciDriver(context),
            'nvidia': nvidia.NvidiaDriver(context)})
        gpus = [d for d in found.devices if d.address in DGX]
        self.assertEqual({'nvidia'}, {d.driver for d in gpus})
        self.assertEqual({}, found.failures)


class PassthroughTest(DriverTestBase):
    """GPUs bound to vfio-pci are invisible to NVML."""

    def test_vfio_gpus_described_from_sysfs_without_nvml(self):
        fake = fake_nvml.dgx_h100()
        drv = self.driver(self.synthetic(), fake)
        devices = drv.discover()
        self.assertEqual(list(DGX), [d.address for d in devices])
        self.assertEqual(0, fake.init_count)
        for dev in devices:
            self.assertEqual('NVIDIA H100 80GB HBM3', dev.name)
            self.assertEqual(nvidia.HEALTH_FROM_SYSFS_VFIO,
                             dev.capabilities['health_source'])
            self.assertIn(CC_9_0, dev.traits)
            self.assertTrue(dev.healthy)
            self.assertTrue(dev.assignable, dev.reasons)
            self.assertIsNone(drv.utilization(dev))
            self.assertEqual(device_mod.PciHostdev(dev.address),
                             drv.attach(dev, 'inst-1'))

    def test_mixed_host_nvlink_pairs(self):
        fake = fake_nvml.pcie_nvlink_pairs()
        root = self.synthetic(nvidia_bound=fake_nvml.PAIR_BUS_IDS)
        devices = self.by_address(self.driver(root, fake).discover())
        expect = {'0000:03:00.0': ('0000:04:00.0', '0000:03:00.0'),
                  '0000:04:00.0': ('0000:03:00.0', '0000:03:00.0'),
                  '0000:07:00.0': ('0000:08:00.0', '0000:07:00.0'),
                  '0000:08:00.0': ('0000:07:00.0', '0000:07:00.0')}
        for address, (peer, island) in expect.items():
            caps = devices[address].capabilities
            self.assertEqual(([peer], island, 12),
                             (caps['nvlink_peers'], caps['nvlink_island'],
                              caps['nvlink_links']))
            self.assertNotIn('nvswitches', caps)
        for address in set(DGX) - set(expect):
            self.assertNotIn('nvlink_peers', devices[address].capabilities)
            self.assertEqual(nvidia.HEALTH_FROM_SYSFS_VFIO,
                             devices[address].capabilities['health_source'])

    def test_unhealthy_gpu_is_not_attached(self):
        drv = self.driver(self.synthetic(), fake_nvml.dgx_h100())
        dev = drv.discover()[0]
        dev.health = device_mod.Health.bad('row remapping failed')
        error = self.assertRaises(errors.DriverError, drv.attach, dev,
                                  'inst-1')
        self.assertEqual('GPU 0000:03:00.0 is not given to instance inst-1 '
                         'because it is unhealthy: row remapping failed',
                         str(error))

    def test_vanished_gpu_is_not_attached(self):
        root = self.synthetic()
        drv = self.driver(root, None)
        dev = drv.discover()[0]
        os.unlink(os.path.join(root, 'bus', 'pci', 'devices', dev.address))
        self.assertRaises(errors.DeviceNotFound, drv.attach, dev, 'inst-1')

    def test_unknown_product_keeps_an_empty_name(self):
        root = self.synthetic()
        self.builder.set_attr('0000:03:00.0', 'device', '0x9999')
        dev = self.driver(root, None).discover()[0]
        self.assertEqual('', dev.name)
        self.assertNotIn('cuda_compute_capability', dev.capabilities)


class NoNvmlTest(DriverTestBase):
    """Hosts without NVML: never an exception."""

    def test_captured_gpu_without_nvml_library(self):
        drv = self.driver(hosts.captured_host('h100-1gpu-vm'),
                          fake_nvml.missing_library())
        devices = drv.discover()
        self.assertEqual([H100], [d.address for d in devices])
        dev = devices[0]
        self.assertEqual('NVIDIA H100 80GB HBM3', dev.name)
        self.assertEqual('9.0', dev.capabilities['cuda_compute_capability'])
        self.assertEqual('sysfs (NVML unavailable)',
                         dev.capabilities['health_source'])
        self.assertEqual(1, len(dev.errors))
        self.assertTrue(dev.errors[0].startswith(
            'NVML unavailable (NVML library not found: '), dev.errors[0])
        self.assertTrue(drv.degraded.startswith('NVML library not found'))
        self.assertIn('described from sysfs only (no NVML memory, health '
                      'or load): NVML library not found',
                      self.log.output)
        self.assertEqual(dev.health, drv.health(dev))
        self.assertIsNone(drv.utilization(dev))

    def test_driver_not_loaded(self):
        drv = self.driver(hosts.captured_host('h100-1gpu-vm'),
                          fake_nvml.missing_library(
                              'NVMLError_DriverNotLoaded'))
        self.assertEqual(1, len(drv.discover()))
        self.assertIn('Driver Not Loaded', drv.degraded)

    def test_no_nvidia_device_no_nvml(self):
        fake = fake_nvml.missing_library()
        drv = self.driver(self.synthetic(hosts.cpu_only), fake)
        self.assertEqual([], drv.discover())
        self.assertIsNone(drv.degraded)
        self.assertEqual([], fake.event_sets)

    def test_gpu_bound_to_nvidia_that_nvml_does_not_list(self):
        root = self.synthetic(nvidia_bound=['0000:88:00.0'])
        drv = self.driver(root, fake_nvml.from_capture())
        dev = self.by_address(drv.discover())['0000:88:00.0']
        self.assertEqual('sysfs (NVML does not list it)',
                         dev.capabilities['health_source'])
        self.assertIn('NVML does not list it', dev.errors[0])
        self.assertTrue(drv.health(dev).healthy)


class NvlinkTopologyTest(testscenarios.WithScenarios, testtools.TestCase):
    """The pure NVLink topology step, on link lists."""

    A, B, C, D = ('0000:0a:00.0', '0000:0b:00.0', '0000:0c:00.0',
                  '0000:0d:00.0')
    scenarios = [
        ('no links, no topology', dict(links={}, expected={})),
        ('a bridged pair',
         dict(links={A: [(B, False)] * 4, B: [(A, False)] * 4},
              expected={A: ([B], A, 4, None), B: ([A], A, 4, None)})),
        ('a link seen from one side only is symmetric',
         dict(links={A: [(B, False)], B: [(C, None)]},
              expected={A: ([B], A, 1, None),
                        B: ([A], A, 1, ['0000:0c:00.0'])})),
        ('GPUs on one NVSwitch are peers',
         dict(links={A: [('0000:c1:00.0', True)],
                     B: [('0000:c1:00.0', True)],
                     C: [('0000:c1:00.0', True)]},
              expected={A: ([B, C], A, 1, ['0000:c1:00.0']),
                        B: ([A, C], A, 1, ['0000:c1:00.0']),
                        C: ([A, B], A, 1, ['0000:c1:00.0'])})),
        ('unnamed switches (VM) count as one',
         dict(links={A: [('', True)], B: [('ffffffff:ff:ff.0', True)]},
              expected={A: ([B], A, 1, ['unknown']),
                        B: ([A], A, 1, ['unknown'])})),
        ('NVML not saying: a remote that is not a GPU here is a switch',
         dict(links={A: [(B, None)], B: [(A, None)],
                     C: [('0000:c9:00.0', None)]},
              expected={A: ([B], A, 1, None), B: ([A], A, 1, None),
                        C: ([], C, 1, ['0000:c9:00.0'])})),
        ('a chain is one island, peers are one hop',
         dict(links={A: [(B, False)], B: [(A, False), (C, False)],
                     C: [(B, False), (D, False)], D: [(C, False)]},
              expected={A: ([B], A, 1, None), B: ([A, C], A, 2, None),
                        C: ([B, D], A, 2, None), D: ([C], A, 1, None)})),
    ]

    def test_topology(self):
        result = nvidia.nvlink_topology(self.links)
        got = {gpu: (caps['nvlink_peers'], caps['nvlink_island'],
                     caps['nvlink_links'], caps.get('nvswitches'))
               for gpu, caps in result.items()}
        self.assertEqual(self.expected, got)
