"""May a device be handed to a guest: ``cyborg_nova.policy.assignability``.

Each case reads like a rule: a device is handed out only when it is
allowed, isolated, not used by the host, resettable, and not a PF whose VFs
are handed out instead.
"""

import ast
import inspect

import testscenarios
import testtools

from cyborg_nova import device
from cyborg_nova.policy import assignability

A = assignability
GPU = '0000:3b:00.0'


def gpu(**kw):
    """An H100 ready for passthrough, changed by *kw*."""
    fields = dict(address=GPU, vendor_id='10de', product_id='2330',
                  class_id='030200', kernel_driver='vfio-pci',
                  iommu_group=40, reset_methods=('flr', 'bus'))
    fields.update(kw)
    return device.Device(**fields)


BRIDGE = ('060400', 'pcieport')
NIC = ('020000', 'i40e')


class ReasonsTest(testscenarios.WithScenarios, testtools.TestCase):

    scenarios = [
        ('a vfio-pci GPU alone in its IOMMU group is assignable',
         dict(dev=gpu(), host=A.HostFacts(), rules=A.Rules(),
              not_allowed=None, expected=[])),
        ('a GPU bound to no driver is assignable (libvirt binds it)',
         dict(dev=gpu(kernel_driver=None), host=A.HostFacts(),
              rules=A.Rules(), not_allowed=None, expected=[])),
        ('a GPU sharing its group only with bridges is assignable',
         dict(dev=gpu(iommu_group_members=('0000:3a:00.0',)),
              host=A.HostFacts(members={'0000:3a:00.0': BRIDGE}),
              rules=A.Rules(), not_allowed=None, expected=[])),
        ('a device the operator does not allow',
         dict(dev=gpu(), host=A.HostFacts(), rules=A.Rules(),
              not_allowed='listed in [accelerator] denied_addresses',
              expected=['denied_addresses'])),
        ('a device whose identity could not be read',
         dict(dev=gpu(vendor_id='', errors=('vendor: missing',)),
              host=A.HostFacts(), rules=A.Rules(), not_allowed=None,
              expected=['identity could not be read from sysfs '
                        '(vendor: missing)'])),
        ('a device whose class could not be read, no error recorded',
         dict(dev=gpu(class_id=''), host=A.HostFacts(), rules=A.Rules(),
              not_allowed=None,
              expected=['identity could not be read from sysfs '
                        '(unknown error)'])),
        ('a host without IOMMU',
         dict(dev=gpu(iommu_group=None),
              host=A.HostFacts(iommu_enabled=False), rules=A.Rules(),
              not_allowed=None, expected=['intel_iommu=on'])),
        ('a host without IOMMU, when the operator does not require it',
         dict(dev=gpu(iommu_group=None),
              host=A.HostFacts(iommu_enabled=False),
              rules=A.Rules(require_iommu=False), not_allowed=None,
              expected=[])),
        ('a device the IOMMU does not cover',
         dict(dev=gpu(iommu_group=None), host=A.HostFacts(), rules=A.Rules(),
              not_allowed=None, expected=['not in an IOMMU group'])),
        ('a GPU sharing its group with a host NIC',
         dict(dev=gpu(iommu_group_members=('0000:3b:00.1',)),
              host=A.HostFacts(members={'0000:3b:00.1': NIC}),
              rules=A.Rules(), not_allowed=None,
              expected=['not isolated: IOMMU group 40 also holds '
                        '0000:3b:00.1 (class 020000, driver i40e)'])),
        ('a group member the host facts do not describe',
         dict(dev=gpu(iommu_group_members=('0000:3b:00.1',)),
              host=A.HostFacts(), rules=A.Rules(), not_allowed=None,
              expected=['0000:3b:00.1 (class ?, driver none)'])),
        ('a GPU in use by the host',
         dict(dev=gpu(kernel_driver='nvidia'), host=A.HostFacts(),
              rules=A.Rules(), not_allowed=None,
              expected=["bound to kernel driver 'nvidia'",
                        '/sys/bus/pci/devices/%s/driver_override' % GPU])),
        ('a vGPU parent may stay on the host driver (mdevs are handed out)',
         dict(dev=gpu(kernel_driver='nvidia'), host=A.HostFacts(),
              rules=A.Rules(whole_device=False), not_allowed=None,
              expected=[])),
        ('a PF with VFs enabled',
         dict(dev=gpu(virtfns=('0000:3b:00.1', '0000:3b:00.2')),
              host=A.HostFacts(), rules=A.Rules(), not_allowed=None,
              expected=['SR-IOV physical function with 2 VFs'])),
        ('a PF with VFs, as the parent of its VFs',
         dict(dev=gpu(virtfns=('0000:3b:00.1',)), host=A.HostFacts(),
              rules=A.Rules(whole_device=False), not_allowed=None,
              expected=[])),
        ('a device the kernel cannot reset',
         dict(dev=gpu(reset_methods=()), host=A.HostFacts(), rules=A.Rules(),
              not_allowed=None,
              expected=['cannot be reset between tenants',
                        'require_reset = False'])),
        ('a device the kernel cannot reset, when reset is not required',
         dict(dev=gpu(reset_methods=()), host=A.HostFacts(),
              rules=A.Rules(require_reset=False), not_allowed=None,
              expected=[])),
    ]

    def test_reasons(self):
        reasons = A.reasons_not_assignable(self.dev, self.host, self.rules,
                                           self.not_allowed)
        self.assertIsInstance(reasons, tuple)
        if not self.expected:
            self.assertEqual((), reasons)
            return
        self.assertEqual(1, len(reasons), reasons)
        for fragment in self.expected:
            self.assertIn(fragment, reasons[0])


class SeveralReasonsTest(testtools.TestCase):

    def test_every_failed_rule_gives_one_reason_in_order(self):
        dev = gpu(kernel_driver='nvidia', iommu_group=None, reset_methods=(),
                  virtfns=('0000:3b:00.1',))
        reasons = A.reasons_not_assignable(
            dev, A.HostFacts(iommu_enabled=False), A.Rules(),
            not_allowed='not allowed by config: ...')
        self.assertEqual(5, len(reasons))
        self.assertThat(reasons[0], testtools.matchers.StartsWith(
            'not allowed by config'))
        self.assertIn('IOMMU', reasons[1])
        self.assertIn('nvidia', reasons[2])
        self.assertIn('SR-IOV', reasons[3])
        self.assertIn('reset', reasons[4])

    def test_device_is_assignable_exactly_when_no_reason(self):
        ok = gpu()
        bad = gpu(kernel_driver='nvidia')
        for dev in (ok, bad):
            dev.reasons = A.reasons_not_assignable(dev, A.HostFacts())
        self.assertTrue(ok.assignable)
        self.assertFalse(bad.assignable)

    def test_the_device_is_not_changed(self):
        dev = gpu(kernel_driver='nvidia')
        before = dev.to_dict()
        A.reasons_not_assignable(dev, A.HostFacts(iommu_enabled=False))
        self.assertEqual(before, dev.to_dict())


class PurityTest(testtools.TestCase):

    def test_imports_nothing_from_nova_oslo_or_libvirt(self):
        tree = ast.parse(inspect.getsource(assignability))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names.add(node.module or '')
        self.assertEqual({'dataclasses'}, names)
