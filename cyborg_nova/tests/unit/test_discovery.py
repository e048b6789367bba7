"""Loading drivers and merging what they discover: ``cyborg_nova.discovery``.

Drivers are loaded through real entry points: :class:`FakePlugins` writes a
distribution (``*.dist-info`` with ``entry_points.txt``) and the plugin
modules into a temporary directory on ``sys.path``, under a namespace of its
own, so broken plugins are registered on purpose and the installed package
does not matter.
"""

import importlib.metadata
import os
import sys
import uuid

import fixtures
import testtools

from cyborg_nova import device
from cyborg_nova import discovery
from cyborg_nova.drivers import base
from cyborg_nova.drivers import pci
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.unit import test_pci_driver

#: Source of the plugin module the fixture writes; ``{mod}`` is its name.
PLUGINS_SOURCE = '''
from cyborg_nova import device
from cyborg_nova.drivers import base
from cyborg_nova import errors


class VendorDriver(base.AcceleratorDriver):
    """Knows one GPU better than the generic driver does."""

    name = 'vendor'
    specificity = 10
    address = '0000:03:00.0'

    def discover(self):
        return [device.Device(address=self.address, vendor_id='10de',
                              product_id='2330', class_id='030200',
                              driver=self.name, name='H100 by the vendor')]

    def attach(self, device, instance_uuid):
        return None


class FailingDriver(base.AcceleratorDriver):
    name = 'failing'

    def discover(self):
        raise RuntimeError('the device library crashed')

    def attach(self, device, instance_uuid):
        return None


class AbsentDriver(base.AcceleratorDriver):
    name = 'absent'

    def discover(self):
        raise errors.DriverError('No NVIDIA devices (NVML: library not '
                                 'found)')

    def attach(self, device, instance_uuid):
        return None


class BrokenInitDriver(base.AcceleratorDriver):
    name = 'broken_init'

    def __init__(self, context):
        raise ValueError('option foo is bad')

    def discover(self):
        return []

    def attach(self, device, instance_uuid):
        return None


class TuningOnly(base.TuningDriver):
    name = 'tuning'

    def discover(self):
        raise AssertionError('tuning drivers are not asked to discover')

    def tune(self, placement_request, host_topology):
        return None


class Misnamed(VendorDriver):
    """Its devices name another driver than its entry point."""

    name = 'something_else'
'''

BROKEN_MODULE_SOURCE = '''
raise ImportError('libfoo.so.1: cannot open shared object file')
'''


class FakePlugins(fixtures.Fixture):
    """Driver plugins behind real entry points in a namespace of their own,
    which :data:`cyborg_nova.discovery.NAMESPACE` is pointed at.

    ``plugins`` maps entry-point names to ``module:Class`` targets; the
    module names ``{mod}`` (the well-behaved plugins above) and
    ``{broken}`` (a module that fails to import) are filled in.
    """

    DEFAULT = {
        'pci': 'cyborg_nova.drivers.pci:PciDriver',
        'vendor': '{mod}:VendorDriver',
        'failing': '{mod}:FailingDriver',
        'absent': '{mod}:AbsentDriver',
        'broken_init': '{mod}:BrokenInitDriver',
        'broken_import': '{broken}:Driver',
        'not_written_yet': 'cyborg_nova.drivers.no_such_module:Driver',
        'tuning': '{mod}:TuningOnly',
        'misnamed': '{mod}:Misnamed',
    }

    def __init__(self, plugins=None):
        super().__init__()
        self.plugins = dict(self.DEFAULT if plugins is None else plugins)

    def _setUp(self):
        tag = uuid.uuid4().hex[:12]
        self.namespace = 'cyborg_nova.tests.drivers_%s' % tag
        self.module = 'cyborg_nova_test_plugins_%s' % tag
        broken = 'cyborg_nova_test_broken_%s' % tag
        path = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(path, self.module + '.py'), 'w') as f:
            f.write(PLUGINS_SOURCE)
        with open(os.path.join(path, broken + '.py'), 'w') as f:
            f.write(BROKEN_MODULE_SOURCE)
        info = os.path.join(path, 'cyborg_nova_test_plugins_%s-0.dist-info'
                            % tag)
        os.mkdir(info)
        with open(os.path.join(info, 'METADATA'), 'w') as f:
            f.write('Metadata-Version: 2.1\nName: cyborg-nova-test-plugins-'
                    '%s\nVersion: 0\n' % tag)
        with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
            f.write('[%s]\n' % self.namespace)
            for name, target in self.plugins.items():
                f.write('%s = %s\n' % (name, target.format(
                    mod=self.module, broken=broken)))
        self.useFixture(fixtures.MonkeyPatch(
            'sys.path', [path] + sys.path))
        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.discovery.NAMESPACE', self.namespace))
        self._private_stevedore_cache(path)
        self.addCleanup(self._forget_modules, (self.module, broken))

    def _private_stevedore_cache(self, path):
        """stevedore caches entry points per sys.path, in memory and in
        ~/.cache; give it a cache of its own for this fixture."""
        try:
            from stevedore import _cache
            cache = _cache.Cache(cache_dir=os.path.join(path, 'cache'))
        except (ImportError, AttributeError, TypeError):
            return      # a stevedore without it: the new sys.path suffices
        self.useFixture(fixtures.MonkeyPatch(
            'stevedore._cache.get_group_all', cache.get_group_all))

    @staticmethod
    def _forget_modules(names):
        for name in names:
            sys.modules.pop(name, None)


class LoadTestCase(testtools.TestCase):

    host = 'pcie-8gpu-2socket'

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger())
        self.plugins = self.useFixture(FakePlugins())
        root = self.useFixture(fixtures.TempDir()).path
        hosts.SYNTHETIC_HOSTS[self.host](root)
        self.conf = test_pci_driver.make_conf(self, sysfs_root=root)
        self.context = discovery.make_context(self.conf)

    def discover(self, *names):
        return discovery.discover(self.context, names=list(names))


class LoadDriversTest(LoadTestCase):

    def test_loads_the_named_drivers_in_order(self):
        failures = {}
        drivers = discovery.load_drivers(self.context, ['vendor', 'pci'],
                                         failures)
        self.assertEqual(['vendor', 'pci'], list(drivers))
        self.assertIsInstance(drivers['pci'], pci.PciDriver)
        self.assertIs(self.context, drivers['pci'].context)
        self.assertEqual({}, failures)

    def test_a_plugin_that_fails_to_import_is_skipped_and_reported(self):
        result = self.discover('pci', 'broken_import')
        self.assertEqual(['pci'], list(result.drivers))
        self.assertEqual(8, len(result.devices))
        why = result.failures['broken_import']
        self.assertThat(why, testtools.matchers.StartsWith('failed to load'))
        self.assertIn('libfoo.so.1', why)
        self.assertIn('broken_import failed to load', self.log.output)

    def test_a_driver_not_written_yet_is_skipped_and_reported(self):
        result = self.discover('not_written_yet', 'pci')
        self.assertEqual(8, len(result.devices))
        why = result.failures['not_written_yet']
        self.assertIn("No module named 'cyborg_nova.drivers.no_such_module'",
                      why)
        # stevedore also counts it as missing: the real reason is kept.
        self.assertNotIn('no such driver', why)

    def test_a_driver_failing_in_its_constructor_is_skipped(self):
        result = self.discover('broken_init', 'pci')
        self.assertIn('option foo is bad', result.failures['broken_init'])
        self.assertEqual(8, len(result.devices))

    def test_an_unknown_driver_name_is_reported(self):
        result = self.discover('pci', 'nonesuch')
        why = result.failures['nonesuch']
        self.assertIn('no such driver', why)
        self.assertIn('enabled_drivers', why)
        self.assertEqual(8, len(result.devices))

    def test_every_driver_failing_gives_no_device_and_every_reason(self):
        result = self.discover('broken_import', 'failing', 'nonesuch')
        self.assertEqual([], result.devices)
        self.assertEqual({'broken_import', 'failing', 'nonesuch'},
                         set(result.failures))

    def test_default_names_come_from_enabled_drivers(self):
        self.useFixture(fixtures.MockPatchObject(
            self.conf.accelerator, 'enabled_drivers', ['pci', 'nonesuch']))
        result = discovery.discover(self.context)
        self.assertEqual(['pci'], list(result.drivers))
        self.assertEqual(['nonesuch'], list(result.failures))


class DiscoverFailuresTest(LoadTestCase):

    def test_a_driver_raising_in_discover_is_skipped_others_go_on(self):
        result = self.discover('failing', 'pci', 'vendor')
        self.assertEqual('discovery failed: the device library crashed',
                         result.failures['failing'])
        self.assertEqual(8, len(result.devices))
        self.assertIn('failing failed to discover', self.log.output)
        # An unexpected exception is logged with its traceback.
        self.assertIn('Traceback', self.log.output)

    def test_a_driver_error_is_reported_without_traceback(self):
        result = self.discover('absent', 'pci')
        self.assertEqual('discovery failed: No NVIDIA devices (NVML: '
                         'library not found)', result.failures['absent'])
        self.assertNotIn('Traceback', self.log.output)
        self.assertEqual(8, len(result.devices))

    def test_tuning_drivers_are_loaded_but_not_asked_to_discover(self):
        result = self.discover('pci', 'tuning')
        self.assertEqual({}, result.failures)
        self.assertEqual(['tuning'], [d.name for d in result.tuning_drivers])
        self.assertEqual(8, len(result.devices))


class MergeTest(LoadTestCase):

    def test_the_more_specific_driver_wins_whatever_the_order(self):
        for names in (('pci', 'vendor'), ('vendor', 'pci')):
            result = self.discover(*names)
            held = result.by_address()['0000:03:00.0']
            self.assertEqual(('vendor', 'H100 by the vendor'),
                             (held.driver, held.name), names)
            self.assertEqual(8, len(result.devices))
            self.assertIs(result.drivers['vendor'], result.driver_for(held))
            self.assertEqual('pci', result.by_address()[
                '0000:04:00.0'].driver)

    def test_devices_are_sorted_by_address(self):
        result = self.discover('vendor', 'pci')
        addresses = [d.address for d in result.devices]
        self.assertEqual(sorted(addresses), addresses)

    def test_devices_carry_the_name_the_driver_was_loaded_under(self):
        # The JSON contract says "driver (plugin name)": a driver whose
        # devices name something else must neither break the merge nor
        # leave a name that driver_for() cannot find.
        for names in (('pci', 'misnamed'), ('misnamed', 'pci')):
            result = self.discover(*names)
            held = result.by_address()['0000:03:00.0']
            self.assertEqual('misnamed', held.driver, names)
            self.assertIs(result.drivers['misnamed'],
                          result.driver_for(held))


class _Fixed(base.AcceleratorDriver):
    """A driver built in a test, without entry points."""

    def __init__(self, name, specificity, addresses, **fields):
        super().__init__(base.HostContext())
        self.name = name
        self.specificity = specificity
        self.addresses = addresses
        self.fields = fields          # utilization, health, ...

    def discover(self):
        return [device.Device(address=a, driver=self.name, **self.fields)
                for a in self.addresses]

    def attach(self, device, instance_uuid):
        return None


class InjectedDriversTest(testtools.TestCase):
    """``discover(drivers=...)`` merges without loading entry points."""

    def setUp(self):
        super().setUp()
        self.useFixture(fixtures.FakeLogger())

    def test_equal_specificity_keeps_the_first(self):
        drivers = {'a': _Fixed('a', 0, ['0000:01:00.0']),
                   'b': _Fixed('b', 0, ['0000:01:00.0', '0000:02:00.0'])}
        result = discovery.discover(base.HostContext(), drivers=drivers)
        self.assertEqual(['a', 'b'], [d.driver for d in result.devices])

    def test_less_specific_does_not_replace(self):
        drivers = {'hi': _Fixed('hi', 10, ['0000:01:00.0']),
                   'lo': _Fixed('lo', 0, ['0000:01:00.0'])}
        result = discovery.discover(base.HostContext(), drivers=drivers)
        self.assertEqual(['hi'], [d.driver for d in result.devices])

    def _merged(self, **drivers):
        result = discovery.discover(base.HostContext(), drivers=drivers)
        self.assertEqual(1, len(result.devices))
        return result.devices[0]

    def test_a_load_only_a_less_specific_driver_read_is_kept(self):
        # A vGPU parent: the mdev driver describes it, NVML read its load.
        busy = device.Utilization(compute_percent=80.0)
        for order in ((1, 0), (0, 1)):
            views = [('mdev', _Fixed('mdev', 20, ['0000:01:00.0'])),
                     ('nvidia', _Fixed('nvidia', 10, ['0000:01:00.0'],
                                       utilization=busy))]
            dev = self._merged(**dict(views[i] for i in order))
            self.assertEqual(('mdev', busy), (dev.driver, dev.utilization))

    def test_the_describing_driver_keeps_its_own_load(self):
        own = device.Utilization(compute_percent=10.0)
        dev = self._merged(
            hi=_Fixed('hi', 10, ['0000:01:00.0'], utilization=own),
            lo=_Fixed('lo', 0, ['0000:01:00.0'], utilization=device.
                      Utilization(compute_percent=90.0)))
        self.assertEqual(own, dev.utilization)

    def test_a_device_any_driver_finds_unhealthy_is_unhealthy(self):
        dev = self._merged(
            mdev=_Fixed('mdev', 20, ['0000:01:00.0']),
            nvidia=_Fixed('nvidia', 10, ['0000:01:00.0'],
                          health=device.Health.bad('XID 79')))
        self.assertEqual(('mdev', False), (dev.driver, dev.healthy))
        self.assertEqual('XID 79 (seen by the nvidia driver)',
                         dev.health.reason)

    def test_a_healthy_view_does_not_heal_the_describing_driver(self):
        dev = self._merged(
            hi=_Fixed('hi', 10, ['0000:01:00.0'],
                      health=device.Health.bad('link down')),
            lo=_Fixed('lo', 0, ['0000:01:00.0']))
        self.assertEqual('link down', dev.health.reason)

    def test_a_driver_returning_none_is_skipped(self):
        drivers = {'none': _Fixed('none', 0, []),
                   'ok': _Fixed('ok', 0, ['0000:01:00.0'])}
        drivers['none'].discover = lambda: None
        result = discovery.discover(base.HostContext(), drivers=drivers)
        self.assertEqual(['ok'], [d.driver for d in result.devices])
        self.assertIn('discovery failed', result.failures['none'])

    def test_no_drivers(self):
        result = discovery.discover(base.HostContext(), drivers={})
        self.assertEqual(([], {}), (result.devices, result.failures))


class MakeContextTest(testtools.TestCase):

    def test_sysfs_root_from_config(self):
        conf = test_pci_driver.make_conf(self, sysfs_root='/srv/capture')
        ctx = discovery.make_context(conf)
        self.assertEqual(('/srv/capture', conf, None),
                         (ctx.sysfs_root, ctx.conf, ctx.nvml))

    def test_sysfs_root_and_nvml_given(self):
        conf = test_pci_driver.make_conf(self)
        nvml = object()
        ctx = discovery.make_context(conf, sysfs_root='/tmp/x', nvml=nvml)
        self.assertEqual(('/tmp/x', nvml), (ctx.sysfs_root, ctx.nvml))


class RealNamespaceTest(testtools.TestCase):
    """The package's own entry points, when it is installed."""

    def test_every_setup_cfg_driver_is_registered(self):
        names = {ep.name for ep in importlib.metadata.entry_points(
            group=discovery.NAMESPACE)}
        if not names:
            self.skipTest('cyborg-nova is not installed (no entry points)')
        self.assertTrue({'pci', 'nvidia', 'mdev', 'numa_pinning'} <= names,
                        names)
