"""``cyborg-nova discover``: ``cyborg_nova.cmd.discover`` through ``main()``.

Drivers are loaded through entry points of a test namespace (see
:class:`cyborg_nova.tests.unit.test_discovery.FakePlugins`): ``pci`` is the
real generic driver; ``nvidia`` and ``mdev`` fail to load, as drivers not
written yet (or whose library is missing) do; ``numa_pinning`` is a tuning
driver.  So the output does not depend on which drivers are installed.
"""

import io
import json
import os
import subprocess
import sys
import warnings

import fixtures
from oslo_config import cfg
import testtools

import cyborg_nova
from cyborg_nova.cmd import discover
from cyborg_nova.cmd import main as main_mod
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.unit import test_discovery

H100_ROOT = hosts.captured_host('h100-1gpu-vm')
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    cyborg_nova.__file__)))

#: What every device in the JSON output carries (the contract).
CONTRACT_KEYS = {
    'address', 'vendor_id', 'product_id', 'numa_node', 'local_cpus',
    'iommu_group', 'resource_class', 'traits', 'driver', 'healthy',
    'health_reason', 'assignable', 'reasons',
}

PLUGINS = {
    'pci': 'cyborg_nova.drivers.pci:PciDriver',
    'nvidia': '{broken}:Driver',
    'mdev': 'cyborg_nova.drivers.no_such_module:MdevDriver',
    'numa_pinning': '{mod}:TuningOnly',
    'vendor': '{mod}:VendorDriver',
}


class CmdTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(test_discovery.FakePlugins(PLUGINS))
        self.tmp = self.useFixture(fixtures.TempDir()).path

    def host(self, name):
        """The sysfs root of a synthetic host, built for this test."""
        root = os.path.join(self.tmp, name, 'sys')
        os.makedirs(root)
        hosts.SYNTHETIC_HOSTS[name](root)
        return root

    def config_file(self, text):
        path = os.path.join(self.tmp, 'cyborg-nova-%d.conf'
                            % len(os.listdir(self.tmp)))
        with open(path, 'w') as f:
            f.write(text)
        return path

    def main(self, *argv):
        """(exit status, stdout, stderr lines) of ``cyborg-nova *argv``."""
        out, err = io.StringIO(), io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', err))
        rc = main_mod.main(list(argv))
        return rc, out.getvalue(), err.getvalue().splitlines()

    def discover_json(self, *argv):
        rc, out, err = self.main('discover', '--format', 'json', *argv)
        self.assertEqual(0, rc, err)
        devices = json.loads(out)
        self.assertIsInstance(devices, list)
        return {d['address']: d for d in devices}, err


class JsonTest(CmdTestCase):

    def test_h100_capture(self):
        if not os.path.isdir(H100_ROOT):
            self.skipTest('the h100-1gpu-vm capture is not in this tree')
        devices, err = self.discover_json('--sysfs-root', H100_ROOT)
        gpu = devices.pop('0000:00:06.0')
        self.assertEqual({}, devices)
        self.assertEqual(
            ('10de', '2330', 0, list(range(16)), None, 'PGPU', 'pci',
             'nvidia', True, '', False),
            (gpu['vendor_id'], gpu['product_id'], gpu['numa_node'],
             gpu['local_cpus'], gpu['iommu_group'], gpu['resource_class'],
             gpu['driver'], gpu['kernel_driver'], gpu['healthy'],
             gpu['health_reason'], gpu['assignable']))
        self.assertEqual('local_cpulist', gpu['numa_source'])
        self.assertIn('CUSTOM_ACCEL_NUMA_NODE_0', gpu['traits'])
        self.assertIn('CUSTOM_PCI_PRODUCT_10DE_2330', gpu['traits'])
        self.assertEqual(2, len(gpu['reasons']))
        self.assertIn('IOMMU', gpu['reasons'][0])
        self.assertIn('nvidia', gpu['reasons'][1])

    def test_every_device_has_the_contract_keys(self):
        devices, _ = self.discover_json(
            '--sysfs-root', self.host('sriov-accelerator'))
        self.assertEqual(5, len(devices))
        for dev in devices.values():
            self.assertEqual(set(), CONTRACT_KEYS - set(dev), dev['address'])
            self.assertIsInstance(dev['traits'], list)
            self.assertIsInstance(dev['local_cpus'], list)
            self.assertIsInstance(dev['reasons'], list)
            self.assertIsInstance(dev['assignable'], bool)
            self.assertIsInstance(dev['healthy'], bool)

    def test_eight_gpus_on_two_sockets(self):
        devices, _ = self.discover_json(
            '--sysfs-root', self.host('pcie-8gpu-2socket'))
        self.assertEqual(8, len(devices))
        nodes = {a: d['numa_node'] for a, d in devices.items()}
        self.assertEqual([0] * 4 + [1] * 4, [nodes[a] for a in sorted(nodes)])
        groups = [d['iommu_group'] for d in devices.values()]
        self.assertEqual(8, len(set(groups)))
        self.assertNotIn(None, groups)
        for dev in devices.values():
            self.assertTrue(dev['assignable'], dev['reasons'])
            self.assertEqual([], dev['reasons'])
            self.assertIn('CUSTOM_ACCEL_NUMA_NODE_%d' % dev['numa_node'],
                          dev['traits'])

    def test_gpu_sharing_an_iommu_group(self):
        devices, _ = self.discover_json(
            '--sysfs-root', self.host('gpu-shares-iommu-group-with-nic'))
        gpu = devices['0000:01:00.0']
        self.assertFalse(gpu['assignable'])
        self.assertIn('0000:01:00.1', gpu['reasons'][0])

    def test_sriov(self):
        devices, _ = self.discover_json(
            '--sysfs-root', self.host('sriov-accelerator'))
        self.assertFalse(devices['0000:81:00.0']['assignable'])
        self.assertEqual(['0000:81:00.1', '0000:81:00.2', '0000:81:00.3',
                          '0000:81:00.4'],
                         devices['0000:81:00.0']['virtfns'])
        for vf in ('0000:81:00.1', '0000:81:00.4'):
            self.assertTrue(devices[vf]['assignable'])
            self.assertEqual('FPGA', devices[vf]['resource_class'])

    def test_cpu_only_host_gives_an_empty_list(self):
        rc, out, err = self.main('discover', '--format', 'json',
                                 '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(0, rc)
        self.assertEqual([], json.loads(out))

    def test_driver_failures_go_to_stderr_one_line_each(self):
        _, err = self.discover_json('--sysfs-root', self.host('cpu-only'))
        self.assertEqual(2, len(err), err)
        self.assertThat(err[0], testtools.matchers.StartsWith(
            'cyborg-nova discover: driver mdev skipped: failed to load: '))
        self.assertThat(err[1], testtools.matchers.StartsWith(
            'cyborg-nova discover: driver nvidia skipped: failed to load: '))
        self.assertIn('libfoo.so.1', err[1])


class TableTest(CmdTestCase):

    def test_h100_capture_shows_the_reasons(self):
        if not os.path.isdir(H100_ROOT):
            self.skipTest('the h100-1gpu-vm capture is not in this tree')
        rc, out, err = self.main('discover', '--sysfs-root', H100_ROOT)
        self.assertEqual(0, rc)
        self.assertIn('1 accelerator found, none is assignable', out)
        self.assertIn('IOMMU off', out)
        self.assertIn('0000:00:06.0', out)
        self.assertIn('030200 -> PGPU', out)
        self.assertIn('    - no IOMMU groups on this host', out)
        self.assertIn("    - in use by the host: bound to kernel driver "
                      "'nvidia'", out)
        self.assertIn('0*', out)                 # derived NUMA node
        self.assertIn('Other PCI devices (not offered to guests):', out)
        self.assertIn('0000:00:03.0  virtio 1af4:1041  Ethernet controller '
                      '(020000), virtio-pci: not an accelerator class, not '
                      'allowed by config', out)
        self.assertIn('nvidia: skipped: failed to load', out)
        self.assertIn('numa_pinning: loaded (tuning driver', out)

    def test_cpu_only_host_says_none_is_assignable(self):
        rc, out, err = self.main('discover', '--sysfs-root',
                                 self.host('cpu-only'))
        self.assertEqual(0, rc)
        self.assertIn('No accelerators found: none of the 3 PCI devices '
                      'seen is an accelerator the enabled drivers offer, so '
                      'none is assignable.', out)
        for address in ('0000:00:00.0', '0000:00:03.0', '0000:00:04.0'):
            self.assertIn(address, out)
        self.assertIn('NVMe controller (010802), nvme: not an accelerator '
                      'class', out)
        self.assertIn('pci: ran, 0 accelerators', out)

    def test_assignable_gpus(self):
        rc, out, _ = self.main('discover', '--sysfs-root',
                               self.host('pcie-8gpu-2socket'))
        self.assertEqual(0, rc)
        self.assertIn('8 accelerators found, 8 assignable.', out)
        self.assertIn('2 NUMA nodes (0: CPUs 0-15, 1: CPUs 16-31); IOMMU on',
                      out)
        self.assertNotIn('    - ', out)          # no reasons to give

    def test_a_more_specific_driver_names_the_device(self):
        path = self.config_file('[accelerator]\nenabled_drivers = pci,vendor'
                                '\n')
        rc, out, _ = self.main('discover', '--config-file', path,
                               '--sysfs-root',
                               self.host('pcie-8gpu-2socket'))
        self.assertEqual(0, rc)
        self.assertIn('H100 by the vendor (10de:2330)', out)
        self.assertIn('vendor: ran, 1 accelerator', out)
        self.assertIn('pci: ran, 7 accelerators', out)


class ConfigTest(CmdTestCase):

    def test_config_file_options_apply(self):
        root = self.host('pcie-8gpu-2socket')
        path = self.config_file(
            '[accelerator]\nsysfs_root = %s\ndenied_addresses = 0000:03:00.0'
            '\nenabled_drivers = pci\n' % root)
        devices, err = self.discover_json('--config-file', path)
        self.assertEqual([], err)
        self.assertFalse(devices['0000:03:00.0']['assignable'])
        self.assertIn('denied_addresses',
                      devices['0000:03:00.0']['reasons'][0])
        self.assertTrue(devices['0000:04:00.0']['assignable'])

    def test_sysfs_root_option_overrides_the_config_file(self):
        path = self.config_file('[accelerator]\nsysfs_root = %s\n'
                                % self.host('cpu-only'))
        devices, _ = self.discover_json(
            '--config-file', path,
            '--sysfs-root', self.host('pcie-8gpu-2socket'))
        self.assertEqual(8, len(devices))

    def test_sysfs_root_option_leaves_no_override_behind(self):
        self.discover_json('--sysfs-root', self.host('cpu-only'))
        fresh = discover.load_config()
        self.assertEqual('/sys', fresh.accelerator.sysfs_root)

    def test_missing_config_file(self):
        missing = os.path.join(self.tmp, 'nope.conf')
        rc, out, err = self.main('discover', '--config-file', missing)
        self.assertEqual(2, rc)
        self.assertEqual('', out)
        self.assertIn('configuration error', err[0])
        self.assertIn('nope.conf', err[0])

    def test_bad_option_value(self):
        path = self.config_file('[accelerator]\nrequire_iommu = maybe\n')
        rc, out, err = self.main('discover', '--config-file', path,
                                 '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(2, rc)
        self.assertIn('require_iommu', ' '.join(err))
        self.assertIn('maybe', ' '.join(err))

    def test_bad_resource_class_entry(self):
        path = self.config_file('[accelerator]\nresource_classes = '
                                '10de:2330=VGPU\n')
        rc, out, err = self.main('discover', '--config-file', path,
                                 '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(2, rc)
        self.assertEqual('', out)
        self.assertIn("configuration error: [accelerator] resource_classes "
                      "entry '10de:2330=VGPU': VGPU is not for whole devices",
                      err[0])

    def test_sysfs_root_that_does_not_exist(self):
        rc, out, err = self.main('discover', '--sysfs-root',
                                 os.path.join(self.tmp, 'nowhere'))
        self.assertEqual(2, rc)
        self.assertIn('is not a directory', err[0])

    def test_sysfs_root_without_pci_bus_is_warned_about(self):
        rc, out, err = self.main('discover', '--sysfs-root', self.tmp)
        self.assertEqual(0, rc)
        self.assertIn('has no bus/pci/devices', ' '.join(err))

    def test_never_the_global_conf(self):
        seen = []
        real = discover.conf_mod.register_opts
        self.useFixture(fixtures.MockPatch(
            'cyborg_nova.cmd.discover.conf_mod.register_opts',
            side_effect=lambda conf: (seen.append(conf), real(conf))))
        self.discover_json('--sysfs-root', self.host('cpu-only'))
        self.assertEqual(1, len(seen))
        self.assertIsNot(cfg.CONF, seen[0])


class ExitStatusTest(CmdTestCase):

    def test_every_driver_failing_exits_1(self):
        path = self.config_file('[accelerator]\nenabled_drivers = nvidia,'
                                'mdev,numa_pinning,nonesuch\n')
        rc, out, err = self.main('discover', '--format', 'json',
                                 '--config-file', path, '--sysfs-root',
                                 self.host('cpu-only'))
        self.assertEqual(1, rc)
        self.assertEqual([], json.loads(out))
        skipped = [e for e in err if ' skipped: ' in e]
        self.assertEqual(3, len(skipped), err)
        self.assertIn('no device driver ran', err[-1])

    def test_no_driver_enabled_exits_1(self):
        path = self.config_file('[accelerator]\nenabled_drivers =\n')
        rc, _, err = self.main('discover', '--config-file', path,
                               '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(1, rc)
        self.assertIn('enabled: none', err[-1])

    def test_one_driver_running_is_enough(self):
        rc, _, _ = self.main('discover', '--sysfs-root',
                             self.host('cpu-only'))
        self.assertEqual(0, rc)


class MainTest(CmdTestCase):

    def test_no_subcommand_is_a_usage_error(self):
        rc, out, err = self.main()
        self.assertEqual(2, rc)
        self.assertIn('usage: cyborg-nova', '\n'.join(err))

    def test_help_lists_discover(self):
        rc, out, _ = self.main('--help')
        self.assertEqual(0, rc)
        self.assertIn('discover', out)

    def test_subcommands_are_the_modules_of_the_package(self):
        names = main_mod.subcommand_names()
        self.assertEqual('discover', names[0])
        self.assertNotIn('main', names)

    def test_a_subcommand_that_fails_to_import_leaves_the_others(self):
        real = main_mod.importlib.import_module

        def import_module(name):
            if name == 'cyborg_nova.cmd.simulate':
                raise ImportError('simulate is being written')
            return real(name)
        self.useFixture(fixtures.MockPatch(
            'cyborg_nova.cmd.main.subcommand_names',
            return_value=['discover', 'simulate']))
        self.useFixture(fixtures.MockPatch(
            'cyborg_nova.cmd.main.importlib.import_module',
            side_effect=import_module))
        rc, out, err = self.main('discover', '--format', 'json',
                                 '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(0, rc)
        self.assertEqual('[]\n', out)
        self.assertIn('cyborg-nova: the simulate command is unavailable: '
                      'ImportError: simulate is being written', err)

    def test_bad_format_is_a_usage_error(self):
        rc, _, err = self.main('discover', '--format', 'yaml')
        self.assertEqual(2, rc)
        self.assertIn('invalid choice', '\n'.join(err))

    def test_debug_logs_at_debug_level(self):
        root = self.host('cpu-only')
        _, _, quiet = self.main('discover', '--sysfs-root', root)
        _, _, loud = self.main('--debug', 'discover', '--sysfs-root', root)
        self.assertFalse([line for line in quiet if 'DEBUG' in line], quiet)
        self.assertTrue([line for line in loud if line.startswith(
            'DEBUG cyborg_nova.cmd.discover: Discovering on sysfs tree %s '
            'with drivers pci, nvidia, mdev, numa_pinning' % root)], loud)
        # Without --debug the log does not repeat the one-line reports.
        self.assertFalse([line for line in quiet
                          if 'WARNING cyborg_nova.discovery' in line], quiet)
        self.assertTrue([line for line in loud
                         if 'WARNING cyborg_nova.discovery' in line], loud)

    def test_logging_and_warning_filters_are_restored(self):
        import logging
        root_logger = logging.getLogger()
        handlers, level = list(root_logger.handlers), root_logger.level
        filters = list(warnings.filters)
        self.main('discover', '--sysfs-root', self.host('cpu-only'))
        self.assertEqual(handlers, root_logger.handlers)
        self.assertEqual(level, root_logger.level)
        self.assertEqual(filters, warnings.filters)


class NvmlChoiceTest(testtools.TestCase):

    def test_this_hosts_sysfs_uses_the_real_nvml(self):
        self.assertIsNone(discover.nvml_for('/sys'))
        self.assertIsNone(discover.nvml_for('/sys/'))

    def test_another_tree_never_reaches_this_hosts_gpus(self):
        nvml = discover.nvml_for('/srv/capture/sys')
        exc = self.assertRaises(nvml.NVMLError, nvml.nvmlInit)
        self.assertIn('/srv/capture/sys', str(exc))


class ProcessTest(testtools.TestCase):
    """The command as a person runs it: a process of its own, the real
    entry points, and nothing but its own lines on standard error."""

    def test_clean_output(self):
        if not os.path.isfile(os.path.join(REPO_ROOT, 'setup.cfg')):
            self.skipTest('not run from a source tree')
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'sys')
        os.makedirs(root)
        hosts.cpu_only(root)
        env = dict(os.environ, PYTHONPATH=REPO_ROOT)
        env.pop('PYTHONWARNINGS', None)
        proc = subprocess.run(
            [sys.executable, '-m', 'cyborg_nova.cmd.main', 'discover',
             '--format', 'json', '--sysfs-root', root],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, timeout=120, cwd=REPO_ROOT)
        self.assertIn(proc.returncode, (0, 1), proc.stderr)
        self.assertEqual([], json.loads(proc.stdout))
        for line in proc.stderr.splitlines():
            self.assertNotIn('Warning', line)
            self.assertNotIn('deprecated', line.lower())
            self.assertTrue(line.startswith(('cyborg-nova discover: ',
                                             'WARNING cyborg_nova.',
                                             'ERROR cyborg_nova.')), line)
