"""The table ``cyborg-nova discover`` prints: ``cyborg_nova.report``."""

import ast
import inspect

import testscenarios
import testtools

from cyborg_nova import device
from cyborg_nova import report


def dev(**kw):
    fields = dict(address='0000:3b:00.0', vendor_id='10de',
                  product_id='2330', class_id='030200', driver='pci',
                  numa_node=1, numa_source='numa_node', iommu_group=40,
                  kernel_driver='vfio-pci', resource_class='PGPU')
    fields.update(kw)
    return device.Device(**fields)


NIC = dev(address='0000:00:03.0', vendor_id='8086', product_id='1572',
          class_id='020000', kernel_driver='i40e',
          resource_class='PCI_DEVICE', allowed=False,
          reasons=('not allowed by config: ...',))


class CellsTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('a known vendor', dict(fn=report.device_name, dev=dev(),
                                expected='NVIDIA 10de:2330')),
        ('a driver-given name',
         dict(fn=report.device_name, dev=dev(name='NVIDIA H100'),
              expected='NVIDIA H100 (10de:2330)')),
        ('an unknown vendor', dict(fn=report.device_name,
                                   dev=dev(vendor_id='abcd'),
                                   expected='abcd:2330')),
        ('an unreadable identity', dict(fn=report.device_name,
                                        dev=dev(vendor_id=''),
                                        expected='?')),
        ('a NUMA node from the kernel', dict(fn=report.numa_cell, dev=dev(),
                                             expected='1')),
        ('a derived NUMA node',
         dict(fn=report.numa_cell,
              dev=dev(numa_node=0, numa_source='local_cpulist'),
              expected='0*')),
        ('no NUMA node', dict(fn=report.numa_cell,
                              dev=dev(numa_node=None, numa_source=''),
                              expected='-')),
        ('healthy', dict(fn=report.health_cell, dev=dev(), expected='ok')),
        ('unhealthy', dict(fn=report.health_cell,
                           dev=dev(health=device.Health.bad('XID 79')),
                           expected='UNHEALTHY')),
        ('not an accelerator, not allowed',
         dict(fn=report.why_not_offered, dev=NIC,
              expected='not an accelerator class, not allowed by config')),
        ('an allowed device no driver reports',
         dict(fn=report.why_not_offered, dev=dev(),
              expected='no enabled driver reports it')),
    ]

    def test_cell(self):
        self.assertEqual(self.expected, self.fn(self.dev))


class ClassNameTest(testtools.TestCase):

    def test_most_specific_name_first(self):
        self.assertEqual('NVMe controller', report.class_name('010802'))
        self.assertEqual('storage controller', report.class_name('018000'))
        self.assertEqual('3D controller', report.class_name('030200'))
        self.assertEqual('processing accelerator',
                         report.class_name('120000'))
        self.assertEqual('', report.class_name('7f0000'))
        self.assertEqual('', report.class_name(''))


class HostLineTest(testtools.TestCase):

    def test_two_nodes_iommu_on(self):
        self.assertEqual(
            'Host /sys: 2 NUMA nodes (0: CPUs 0-3,8, 1: CPUs 4-7); IOMMU on',
            report.host_line('/sys', {0: (0, 1, 2, 3, 8), 1: (4, 5, 6, 7)},
                             True))

    def test_nothing_known(self):
        self.assertEqual(
            'Host x: no NUMA nodes listed; IOMMU off (no IOMMU groups)',
            report.host_line('x', {}, False))

    def test_cpu_ranges(self):
        self.assertEqual('', report.cpu_ranges(()))
        self.assertEqual('0-3,5,7-8', report.cpu_ranges((8, 7, 5, 0, 1, 2,
                                                         3)))


class TableTest(testtools.TestCase):

    def test_one_row_per_accelerator_reasons_indented_below(self):
        ok = dev(address='0000:3b:00.0')
        bad = dev(address='0000:af:00.0', kernel_driver='nvidia',
                  reasons=('in use by the host', 'cannot be reset'))
        text = report.discovery_table([ok, bad])
        lines = text.splitlines()
        self.assertEqual('2 accelerators found, 1 assignable.', lines[0])
        header = lines[2]
        self.assertThat(header, testtools.matchers.StartsWith('ADDRESS'))
        self.assertIn('ASSIGNABLE', header)
        self.assertThat(lines[3], testtools.matchers.StartsWith(
            '0000:3b:00.0  NVIDIA 10de:2330'))
        self.assertThat(lines[3], testtools.matchers.EndsWith('yes'))
        self.assertIn('030200 -> PGPU', lines[3])
        self.assertThat(lines[4], testtools.matchers.EndsWith('no'))
        self.assertEqual(['    - in use by the host',
                          '    - cannot be reset'], lines[5:7])
        # Columns line up.
        self.assertEqual(header.index('ASSIGNABLE'),
                         lines[3].rindex('yes'))

    def test_health_and_errors_are_shown(self):
        sick = dev(health=device.Health.bad('XID 79: fell off the bus'),
                   errors=('numa_node: malformed',))
        text = report.discovery_table([sick])
        self.assertIn('    - unhealthy: XID 79: fell off the bus', text)
        self.assertIn('    - error: numa_node: malformed', text)

    def test_derived_numa_node_is_explained(self):
        text = report.discovery_table(
            [dev(numa_node=0, numa_source='local_cpulist')])
        self.assertIn('* NUMA node derived from the device\'s local CPUs',
                      text)
        self.assertNotIn('derived', report.discovery_table([dev()]))

    def test_other_devices_one_line_each_with_why(self):
        text = report.discovery_table([], [NIC])
        self.assertIn('No accelerators found: none of the 1 PCI device seen '
                      'is an accelerator the enabled drivers offer, so none '
                      'is assignable.', text)
        self.assertIn('    0000:00:03.0  Intel 8086:1572  Ethernet controller '
                      '(020000), i40e: not an accelerator class, not '
                      'allowed by config\n', text)
        self.assertIn('allowed_classes', text)

    def test_none_assignable(self):
        text = report.discovery_table([dev(reasons=('x',))])
        self.assertIn('1 accelerator found, none is assignable', text)

    def test_drivers_section(self):
        text = report.discovery_table(
            [dev(driver='nvidia')], drivers_ran=['pci', 'nvidia'],
            failures={'mdev': 'failed to load: No module named x'},
            tuning_drivers=['numa_pinning'],
            driver_notes={'nvidia': 'degraded: NVML library not found'},
            host='Host /sys: 1 NUMA node; IOMMU on')
        lines = text.splitlines()
        self.assertEqual('Host /sys: 1 NUMA node; IOMMU on', lines[0])
        drivers = lines[lines.index('Drivers:') + 1:]
        self.assertEqual([
            '    pci: ran, 0 accelerators',
            '    nvidia: ran, 1 accelerator (degraded: NVML library not '
            'found)',
            '    numa_pinning: loaded (tuning driver, owns no devices)',
            '    mdev: skipped: failed to load: No module named x',
        ], drivers)

    def test_ends_with_one_newline(self):
        for text in (report.discovery_table([]),
                     report.discovery_table([dev()], [NIC])):
            self.assertThat(text, testtools.matchers.EndsWith('\n'))
            self.assertFalse(text.endswith('\n\n'))


class PurityTest(testtools.TestCase):

    def test_imports_nothing(self):
        tree = ast.parse(inspect.getsource(report))
        self.assertEqual([], [n for n in ast.walk(tree)
                              if isinstance(n, (ast.Import, ast.ImportFrom))])
