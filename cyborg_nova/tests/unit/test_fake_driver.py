"""The test driver: ``cyborg_nova.drivers.fake``."""

import fixtures
import os_resource_classes as orc
from oslo_config import cfg
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova import device as device_mod
from cyborg_nova import discovery
from cyborg_nova.drivers import base
from cyborg_nova.drivers import fake
from cyborg_nova.drivers import pci
from cyborg_nova import errors
from cyborg_nova.tests.fixtures import hosts

INSTANCE = '9a2f3c1e-0d7b-4b7e-9d1a-3f1d2c4b5a60'
Call = fake.Call


class FakeDriverTest(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.addCleanup(fake.FakeDriver.reset)
        fake.FakeDriver.reset()
        self.gpu = fake.make_device('0000:81:00.0', numa_node=1)
        self.fpga = fake.make_device('0000:82:00.0', resource_class=orc.FPGA,
                                     vendor_id='1172', product_id='5052')
        fake.FakeDriver.DEVICES = [self.gpu, self.fpga]
        self.driver = fake.FakeDriver(base.HostContext())

    def test_make_device(self):
        self.assertEqual('fake', self.gpu.driver)
        self.assertEqual(orc.PGPU, self.gpu.resource_class)
        self.assertEqual(1, self.gpu.numa_node)
        self.assertEqual({'CUSTOM_PCI_VENDOR_10DE',
                          'CUSTOM_PCI_PRODUCT_10DE_2330',
                          'CUSTOM_ACCEL_NUMA_NODE_1'}, set(self.gpu.traits))
        self.assertTrue(self.gpu.assignable)
        odd = fake.make_device(numa_node=None, reasons=('broken',))
        self.assertFalse(odd.assignable)
        self.assertEqual({'CUSTOM_PCI_VENDOR_10DE',
                          'CUSTOM_PCI_PRODUCT_10DE_2330'}, set(odd.traits))

    def test_discovers_the_test_devices_as_copies(self):
        found = self.driver.discover()
        self.assertEqual([self.gpu, self.fpga], found)
        found[0].numa_node = 7
        self.assertEqual(1, fake.FakeDriver.DEVICES[0].numa_node)

    def test_records_calls_in_order(self):
        self.driver.discover()
        self.driver.setup(self.gpu)
        hostdev = self.driver.attach(self.gpu, INSTANCE)
        self.driver.detach(self.gpu, INSTANCE)
        self.driver.uninstall(self.gpu)
        self.assertEqual(device_mod.PciHostdev('0000:81:00.0'), hostdev)
        self.assertEqual([
            Call('discover', None, None),
            Call('setup', '0000:81:00.0', None),
            Call('attach', '0000:81:00.0', INSTANCE),
            Call('detach', '0000:81:00.0', INSTANCE),
            Call('uninstall', '0000:81:00.0', None),
        ], fake.FakeDriver.CALLS)
        self.assertEqual([Call('attach', '0000:81:00.0', INSTANCE)],
                         fake.FakeDriver.calls_of('attach'))

    def test_fail_one_device(self):
        fake.FakeDriver.fail('attach', '0000:81:00.0')
        exc = self.assertRaises(errors.DriverError, self.driver.attach,
                                self.gpu, INSTANCE)
        self.assertEqual('injected failure of fake attach on 0000:81:00.0',
                         str(exc))
        self.driver.attach(self.fpga, INSTANCE)
        self.assertEqual(2, len(fake.FakeDriver.calls_of('attach')))

    def test_fail_any_device_with_a_given_error(self):
        fake.FakeDriver.fail('setup', exc=errors.DeviceNotFound('gone'))
        for dev in (self.gpu, self.fpga):
            self.assertRaises(errors.DeviceNotFound, self.driver.setup, dev)

    def test_fail_an_unknown_method(self):
        exc = self.assertRaises(ValueError, fake.FakeDriver.fail, 'explode')
        self.assertIn('use one of discover, setup, attach, detach, '
                      'uninstall', str(exc))

    def test_a_failing_discovery_is_reported_and_skipped(self):
        log = self.useFixture(fixtures.FakeLogger())
        fake.FakeDriver.fail('discover')
        found = discovery.discover(base.HostContext(),
                                   drivers={'fake': self.driver})
        self.assertEqual([], found.devices)
        self.assertEqual({'fake': 'discovery failed: injected failure of '
                                  'fake discover'}, found.failures)
        self.assertIn('Accelerator driver fake failed to discover',
                      log.output)

    def test_attach_unknown_device(self):
        stranger = fake.make_device('0000:99:00.0')
        exc = self.assertRaises(errors.DeviceNotFound, self.driver.attach,
                                stranger, INSTANCE)
        self.assertIn('0000:99:00.0 is not one of the fake devices '
                      '(0000:81:00.0, 0000:82:00.0)', str(exc))

    def test_attach_not_assignable(self):
        bad = fake.make_device('0000:83:00.0', reasons=('not reset',))
        fake.FakeDriver.DEVICES.append(bad)
        self.assertRaises(errors.NotAssignable, self.driver.attach, bad,
                          INSTANCE)

    def test_reset(self):
        fake.FakeDriver.fail('detach')
        self.driver.discover()
        fake.FakeDriver.reset()
        self.assertEqual(([], [], {}), (fake.FakeDriver.DEVICES,
                                        fake.FakeDriver.CALLS,
                                        fake.FakeDriver.FAILURES))
        self.driver.detach(self.gpu, INSTANCE)

    def test_fake_devices_win_over_what_sysfs_says(self):
        root = self.useFixture(fixtures.TempDir()).path
        hosts.pcie_8gpu_2socket(root)
        conf = cfg.ConfigOpts()
        cn_conf.register_opts(conf)
        conf([], default_config_files=[], default_config_dirs=[])
        context = base.HostContext(sysfs_root=root, conf=conf)
        fake.FakeDriver.DEVICES = [fake.make_device('0000:03:00.0',
                                                    numa_node=1)]
        found = discovery.discover(context, drivers={
            'pci': pci.PciDriver(context), 'fake': fake.FakeDriver(context)})
        gpu = found.by_address()['0000:03:00.0']
        self.assertEqual(('fake', 1), (gpu.driver, gpu.numa_node))
        self.assertEqual('pci', found.by_address()['0000:04:00.0'].driver)

    def test_loads_through_its_entry_point(self):
        failures = {}
        drivers = discovery.load_drivers(base.HostContext(), ['fake'],
                                         failures)
        self.assertEqual({}, failures)
        self.assertIsInstance(drivers['fake'], fake.FakeDriver)
        self.assertEqual([self.gpu, self.fpga], drivers['fake'].discover())
