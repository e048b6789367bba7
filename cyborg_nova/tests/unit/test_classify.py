"""Resource classes and traits: ``cyborg_nova.policy.classify``.

Names are data: every one produced must be a standard os-resource-classes /
os-traits name or a well-formed ``CUSTOM_`` one, as Placement requires.
"""

import os
import re

import fixtures
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import os_resource_classes as orc
import os_traits
from oslo_config import cfg
import testscenarios
import testtools

from cyborg_nova import conf as cn_conf
from cyborg_nova import errors
from cyborg_nova.policy import classify

#: Placement's pattern of a custom resource class or trait name.
CUSTOM_RE = re.compile(r'^CUSTOM_[A-Z0-9_]+$')
MAX_NAME_LENGTH = 255
STANDARD_TRAITS = frozenset(os_traits.get_traits())

HEX_ID = st.integers(min_value=0, max_value=0xffff).map(lambda n: '%04x' % n)
CLASS_ID = st.integers(min_value=0, max_value=0xffffff).map(
    lambda n: '%06x' % n)


def valid_trait(name):
    return len(name) <= MAX_NAME_LENGTH and (
        name in STANDARD_TRAITS or bool(CUSTOM_RE.match(name)))


def valid_resource_class(name):
    return len(name) <= MAX_NAME_LENGTH and (
        name in orc.STANDARDS or bool(CUSTOM_RE.match(name)))


class ResourceClassTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('a 3D controller is a physical GPU',
         dict(ids=('10de', '2330', '030200'), overrides=None,
              expected=orc.PGPU)),
        ('a VGA controller is a physical GPU',
         dict(ids=('1002', '740f', '030000'), overrides=None,
              expected=orc.PGPU)),
        ('another display controller is a physical GPU',
         dict(ids=('1002', '740f', '038000'), overrides=None,
              expected=orc.PGPU)),
        ('a processing accelerator is an FPGA',
         dict(ids=('1172', '5052', '120000'), overrides=None,
              expected=orc.FPGA)),
        ('a NIC is a plain PCI device',
         dict(ids=('8086', '1572', '020000'), overrides=None,
              expected=orc.PCI_DEVICE)),
        ('an unreadable class is a plain PCI device',
         dict(ids=('', '', ''), overrides=None, expected=orc.PCI_DEVICE)),
        ('the operator names a product',
         dict(ids=('10de', '2330', '030200'),
              overrides={'10de:2330': 'CUSTOM_H100'},
              expected='CUSTOM_H100')),
        ('the operator names every product of a vendor',
         dict(ids=('1172', '5052', '120000'),
              overrides={'1172:*': orc.PCI_DEVICE},
              expected=orc.PCI_DEVICE)),
        ('a product override wins over the vendor one',
         dict(ids=('10de', '2330', '030200'),
              overrides={'10de:*': 'CUSTOM_NV', '10de:2330': 'CUSTOM_H100'},
              expected='CUSTOM_H100')),
        ('an override of another product does not apply',
         dict(ids=('10de', '2330', '030200'),
              overrides={'10de:2331': 'CUSTOM_H100_PCIE'},
              expected=orc.PGPU)),
    ]

    def test_resource_class(self):
        self.assertEqual(self.expected, classify.resource_class(
            *self.ids, overrides=self.overrides))


class NamesTest(testtools.TestCase):

    def test_class_prefix_resource_classes_are_standard(self):
        for prefix, rc in classify.CLASS_PREFIX_RESOURCE_CLASSES:
            self.assertIn(rc, orc.STANDARDS, prefix)
            self.assertTrue(classify.valid_resource_class(rc))

    def test_custom_name(self):
        self.assertEqual('CUSTOM_PCI_10DE', classify.custom_name('pci',
                                                                 '10de'))
        self.assertEqual('CUSTOM_ACCEL_NUMA_NODE_1',
                         classify.custom_name('ACCEL_NUMA_NODE', 1))

    def test_identity_traits(self):
        self.assertEqual({'CUSTOM_PCI_VENDOR_10DE',
                          'CUSTOM_PCI_PRODUCT_10DE_2330'},
                         classify.identity_traits('10de', '2330'))

    def test_numa_trait(self):
        self.assertEqual('CUSTOM_ACCEL_NUMA_NODE_0', classify.numa_trait(0))

    def test_cuda_capability_standard_when_os_traits_has_it(self):
        self.assertEqual(
            os_traits.HW_GPU_CUDA_COMPUTE_CAPABILITY_V7_0,
            classify.cuda_capability_trait(7, 0))

    def test_cuda_capability_custom_when_os_traits_lacks_it(self):
        name = 'HW_GPU_CUDA_COMPUTE_CAPABILITY_V9_0'
        self.assertNotIn(name, STANDARD_TRAITS)
        self.assertEqual('CUSTOM_' + name,
                         classify.cuda_capability_trait(9, 0))

    def test_valid_resource_class(self):
        self.assertTrue(classify.valid_resource_class(orc.PGPU))
        self.assertTrue(classify.valid_resource_class('CUSTOM_H100'))
        self.assertFalse(classify.valid_resource_class('H100'))
        self.assertFalse(classify.valid_resource_class('pgpu'))


class EveryNameIsValidTest(testtools.TestCase):
    """Whatever the ids, every trait and resource class is one Placement
    accepts."""

    @settings(max_examples=200, deadline=None)
    @given(vendor=HEX_ID, product=HEX_ID, class_id=CLASS_ID,
           node=st.integers(min_value=0, max_value=1023))
    def test_traits_and_resource_class(self, vendor, product, class_id,
                                       node):
        names = classify.identity_traits(vendor, product) | {
            classify.numa_trait(node)}
        for name in names:
            self.assertTrue(valid_trait(name), name)
            self.assertTrue(os_traits.is_custom(name), name)
        rc = classify.resource_class(vendor, product, class_id)
        self.assertTrue(valid_resource_class(rc), rc)
        self.assertTrue(classify.valid_resource_class(rc), rc)

    @settings(max_examples=100, deadline=None)
    @given(major=st.integers(min_value=1, max_value=20),
           minor=st.integers(min_value=0, max_value=9))
    def test_cuda_capability_traits(self, major, minor):
        self.assertTrue(valid_trait(
            classify.cuda_capability_trait(major, minor)))

    @settings(max_examples=100, deadline=None)
    @given(parts=st.lists(st.one_of(st.text(min_size=1, max_size=20),
                                    st.integers()),
                          min_size=1, max_size=4))
    def test_custom_name_of_anything(self, parts):
        name = classify.custom_name(*parts)
        self.assertTrue(CUSTOM_RE.match(name), name)


class CheckOverridesTest(testtools.TestCase):
    """``[accelerator] resource_classes`` is checked before a driver uses
    it: a wrong entry is named, with what to write."""

    def test_good_entries_are_kept_with_lower_case_keys(self):
        self.assertEqual(
            {'10de:2330': 'PGPU', '1172:*': 'FPGA',
             '8086:0b25': 'CUSTOM_ACCEL_QAT'},
            classify.check_overrides(['10DE:2330=PGPU', '1172:*=FPGA',
                                      ' 8086:0b25 = CUSTOM_ACCEL_QAT ']))
        self.assertEqual({}, classify.check_overrides(None))

    def test_bad_entries_are_named(self):
        for entry, says in (
                ('10de:2330', 'is not VENDOR:PRODUCT=RESOURCE_CLASS'),
                ('10de=PGPU', 'is not VENDOR:PRODUCT=RESOURCE_CLASS'),
                ('10de:23300=PGPU', 'is not VENDOR:PRODUCT=RESOURCE_CLASS'),
                ('10de:2330=GPU', "'GPU' is not an accelerator resource "
                                  "class"),
                ('10de:2330=custom_accel_h100', 'CUSTOM_ACCEL_<NAME> in '
                                                'capitals'),
                ('10de:2330=CUSTOM_H100', 'a flavor then asks '
                                          'resources:CUSTOM_ACCEL_<NAME>=1'),
                ('10de:2330=MEMORY_MB', 'not an accelerator resource'),
                ('10de:2330=VGPU', 'VGPU is not for whole devices')):
            error = self.assertRaises(errors.ConfigError,
                                      classify.check_overrides, [entry])
            self.assertIn("[accelerator] resource_classes entry %r" % entry,
                          str(error))
            self.assertIn(says, str(error))

    def test_the_option_reads_entries_from_a_config_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(path, 'w') as f:
            f.write('[accelerator]\nresource_classes = '
                    '10de:2330=CUSTOM_ACCEL_H100,1172:*=FPGA\n')
        conf = cfg.ConfigOpts()
        cn_conf.register_opts(conf)
        conf([], project='cyborg-nova', default_config_files=[path],
             default_config_dirs=[])
        self.assertEqual({'10de:2330': 'CUSTOM_ACCEL_H100', '1172:*': 'FPGA'},
                         classify.check_overrides(
                             conf.accelerator.resource_classes))
