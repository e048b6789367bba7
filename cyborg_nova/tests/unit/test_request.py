"""Reading a flavor's accelerator request: ``cyborg_nova.policy.request``."""

import ast
import inspect

import os_resource_classes as orc
import testscenarios
import testtools

from cyborg_nova import errors
from cyborg_nova.policy import request

R = request.AcceleratorRequest


class ValidSpecsTest(testscenarios.WithScenarios, testtools.TestCase):
    """Extra specs that parse, and what they mean."""

    default_numa_policy = 'preferred'

    scenarios = [
        ('no extra specs ask for nothing',
         dict(specs={}, expected=R())),
        ('specs outside accelerators are left to Nova',
         dict(specs={'hw:cpu_policy': 'dedicated', 'resources:VCPU': 'x',
                     'resources:PGPUS': '1', 'trait:FOO': 'maybe',
                     'accel:device_profile': 'gpu', 'accelerator': 'y',
                     'resources!:PGPU': '1', 'group_policy': 'isolate'},
              expected=R())),
        ('one physical GPU',
         dict(specs={'resources:PGPU': '1'},
              expected=R(resources={'PGPU': 1}, groups={'': {'PGPU': 1}}))),
        ('a vGPU, an FPGA and a PCI device together',
         dict(specs={'resources:VGPU': '1', 'resources:FPGA': '2',
                     'resources:PCI_DEVICE': '1'},
              expected=R(resources={'VGPU': 1, 'FPGA': 2, 'PCI_DEVICE': 1},
                         groups={'': {'VGPU': 1, 'FPGA': 2,
                                      'PCI_DEVICE': 1}}))),
        ('counts of one class are summed across numbered groups',
         dict(specs={'resources:PGPU': '2', 'resources1:PGPU': '1',
                     'resources_gpu-b:PGPU': '1'},
              expected=R(resources={'PGPU': 4},
                         groups={'': {'PGPU': 2}, '1': {'PGPU': 1},
                                 '_gpu-b': {'PGPU': 1}}))),
        ('CUSTOM_ACCEL_ resource classes are accelerators',
         dict(specs={'resources2:CUSTOM_ACCEL_NPU': '3'},
              expected=R(resources={'CUSTOM_ACCEL_NPU': 3},
                         groups={'2': {'CUSTOM_ACCEL_NPU': 3}}))),
        ('other custom resource classes are not',
         dict(specs={'resources:CUSTOM_GOLD': '1',
                     'resources:CUSTOM_ACCEL_': '1'},
              expected=R())),
        ('standard non-accelerator classes are not',
         dict(specs={'resources:VCPU': '4', 'resources:MEMORY_MB': '1024',
                     'resources:SRIOV_NET_VF': '1'},
              expected=R())),
        ('a zero count asks for nothing',
         dict(specs={'resources:PGPU': '0', 'resources1:VGPU': '1'},
              expected=R(resources={'VGPU': 1},
                         groups={'1': {'VGPU': 1}}))),
        ('counts are whole numbers with optional blanks, as Nova reads them',
         dict(specs={'resources:PGPU': ' 2 '},
              expected=R(resources={'PGPU': 2}, groups={'': {'PGPU': 2}}))),
        ('required and forbidden traits of every group are gathered',
         dict(specs={'resources:PGPU': '1',
                     'trait:CUSTOM_NVLINK': 'required',
                     'trait1:HW_GPU_API_CUDA_V12_0': 'required',
                     'trait2:CUSTOM_SLOW': 'forbidden'},
              expected=R(resources={'PGPU': 1}, groups={'': {'PGPU': 1}},
                         required_traits=frozenset(
                             {'CUSTOM_NVLINK', 'HW_GPU_API_CUDA_V12_0'}),
                         forbidden_traits=frozenset({'CUSTOM_SLOW'})))),
        ('numa_policy required',
         dict(specs={'resources:PGPU': '1',
                     'accelerator:numa_policy': 'required'},
              expected=R(resources={'PGPU': 1}, groups={'': {'PGPU': 1}},
                         numa_policy='required'))),
        ('numa_policy none',
         dict(specs={'resources:VGPU': '1',
                     'accelerator:numa_policy': 'none'},
              expected=R(resources={'VGPU': 1}, groups={'': {'VGPU': 1}},
                         numa_policy='none'))),
        ('numa_policy defaults to the configured default',
         dict(specs={'resources:PGPU': '1'}, default_numa_policy='required',
              expected=R(resources={'PGPU': 1}, groups={'': {'PGPU': 1}},
                         numa_policy='required'))),
        ('the flavor overrides the configured default',
         dict(specs={'resources:PGPU': '1',
                     'accelerator:numa_policy': 'preferred'},
              default_numa_policy='required',
              expected=R(resources={'PGPU': 1}, groups={'': {'PGPU': 1}},
                         numa_policy='preferred'))),
        ('link_policy strict',
         dict(specs={'resources:PGPU': '4',
                     'accelerator:link_policy': 'strict'},
              expected=R(resources={'PGPU': 4}, groups={'': {'PGPU': 4}},
                         link_policy='strict'))),
        ('link_policy best_effort',
         dict(specs={'resources1:PGPU': '1', 'resources2:PGPU': '1',
                     'accelerator:link_policy': 'best_effort',
                     'accelerator:numa_policy': 'required'},
              expected=R(resources={'PGPU': 2},
                         groups={'1': {'PGPU': 1}, '2': {'PGPU': 1}},
                         numa_policy='required',
                         link_policy='best_effort'))),
    ]

    def test_parses(self):
        got = request.parse_extra_specs(
            self.specs, default_numa_policy=self.default_numa_policy)
        self.assertEqual(self.expected, got)


class InvalidSpecsTest(testscenarios.WithScenarios, testtools.TestCase):
    """Extra specs that are refused, and what the user is told."""

    scenarios = [
        ('unknown numa_policy',
         dict(specs={'resources:PGPU': '1',
                     'accelerator:numa_policy': 'bogus'},
              message='accelerator:numa_policy=bogus is not valid: use one '
                      'of required, preferred, none')),
        ('policy values are case-sensitive',
         dict(specs={'resources:PGPU': '1',
                     'accelerator:numa_policy': 'Required'},
              message='accelerator:numa_policy=Required is not valid: use '
                      'one of required, preferred, none')),
        ('unknown link_policy',
         dict(specs={'resources:PGPU': '2',
                     'accelerator:link_policy': 'loose'},
              message='accelerator:link_policy=loose is not valid: use one '
                      'of best_effort, strict')),
        ('empty link_policy',
         dict(specs={'resources:PGPU': '2', 'accelerator:link_policy': ''},
              message='accelerator:link_policy= is not valid: use one of '
                      'best_effort, strict')),
        ('unknown key in the accelerator namespace',
         dict(specs={'resources:PGPU': '1', 'accelerator:unknown': '1'},
              message='accelerator:unknown is not a known extra spec: the '
                      'known accelerator: keys are accelerator:numa_policy, '
                      'accelerator:link_policy')),
        ('misspelt key',
         dict(specs={'resources:PGPU': '1',
                     'accelerator:numa-policy': 'required'},
              message='accelerator:numa-policy is not a known extra spec')),
        ('numa_policy without an accelerator',
         dict(specs={'accelerator:numa_policy': 'required'},
              message='accelerator:numa_policy is set but the flavor '
                      'requests no accelerator: add resources:PGPU=1 (or '
                      'VGPU, FPGA, PCI_DEVICE, CUSTOM_ACCEL_...)')),
        ('both policies without an accelerator',
         dict(specs={'accelerator:numa_policy': 'none',
                     'accelerator:link_policy': 'strict',
                     'resources:VCPU': '2'},
              message='accelerator:link_policy and accelerator:numa_policy '
                      'are set but the flavor requests no accelerator')),
        ('a policy with only zero counts',
         dict(specs={'resources:PGPU': '0',
                     'accelerator:link_policy': 'strict'},
              message='accelerator:link_policy is set but the flavor '
                      'requests no accelerator')),
        ('a count that is not a number',
         dict(specs={'resources:PGPU': 'two'},
              message='resources:PGPU=two is not valid: the count must be '
                      'a whole number, 0 or more')),
        ('a fractional count',
         dict(specs={'resources1:VGPU': '1.5'},
              message='resources1:VGPU=1.5 is not valid: the count must be '
                      'a whole number, 0 or more')),
        ('a negative count',
         dict(specs={'resources:FPGA': '-1'},
              message='resources:FPGA=-1 is not valid')),
        ('an empty count',
         dict(specs={'resources:CUSTOM_ACCEL_NPU': ''},
              message='resources:CUSTOM_ACCEL_NPU= is not valid')),
        ('a bad trait value when accelerators are requested',
         dict(specs={'resources:PGPU': '1', 'trait1:CUSTOM_NVLINK': 'yes'},
              message='trait1:CUSTOM_NVLINK=yes is not valid: use one of '
                      'required, forbidden')),
    ]

    def test_refused(self):
        exc = self.assertRaises(
            errors.InvalidRequest, request.parse_extra_specs, self.specs)
        self.assertIn(self.message, str(exc))


class AcceleratorRequestTest(testtools.TestCase):

    def test_wants_devices_and_device_count(self):
        req = request.parse_extra_specs(
            {'resources:PGPU': '2', 'resources1:VGPU': '1'})
        self.assertTrue(req.wants_devices)
        self.assertEqual(3, req.device_count)

    def test_nothing_asked_wants_no_devices(self):
        req = request.parse_extra_specs({'resources:VCPU': '2'})
        self.assertFalse(req.wants_devices)
        self.assertEqual(0, req.device_count)
        self.assertEqual('preferred', req.numa_policy)
        self.assertEqual('best_effort', req.link_policy)

    def test_is_immutable(self):
        req = request.parse_extra_specs({'resources:PGPU': '1'})
        self.assertRaises(AttributeError, setattr, req, 'numa_policy', 'none')

    def test_errors_are_cyborg_nova_errors(self):
        self.assertTrue(
            issubclass(errors.InvalidRequest, errors.CyborgNovaError))

    def test_a_bad_default_is_a_programming_error(self):
        self.assertRaises(ValueError, request.parse_extra_specs,
                          {}, default_numa_policy='bogus')

    def test_the_first_bad_key_in_name_order_is_reported(self):
        exc = self.assertRaises(
            errors.InvalidRequest, request.parse_extra_specs,
            {'resources:VGPU': 'x', 'resources:PGPU': 'y'})
        self.assertIn('resources:PGPU=y', str(exc))

    def test_input_is_not_changed(self):
        specs = {'resources:PGPU': '1', 'accelerator:numa_policy': 'none'}
        request.parse_extra_specs(dict(specs))
        self.assertEqual(
            {'resources:PGPU': '1', 'accelerator:numa_policy': 'none'}, specs)


class NamesTest(testtools.TestCase):
    """Names are data: check them against what they must be."""

    def test_accelerator_classes_are_standard_resource_classes(self):
        for rc in request.ACCELERATOR_CLASSES:
            self.assertIn(rc, orc.STANDARDS)

    def test_custom_prefix_is_a_custom_resource_class_prefix(self):
        self.assertTrue(request.CUSTOM_ACCELERATOR_PREFIX.startswith(
            orc.CUSTOM_NAMESPACE))

    def test_policy_keys_are_in_our_namespace_not_novas(self):
        for key in request.POLICY_CHOICES:
            namespace, _, name = key.partition(':')
            self.assertEqual('accelerator', namespace)
            self.assertRegex(name, r'^[a-z_]+$')

    def test_default_numa_policy_option_offers_the_same_choices(self):
        # The option lives in conf/ (oslo); its choices must match ours.
        from cyborg_nova.conf import accelerator as conf_accelerator
        opt = {o.name: o for o in conf_accelerator.ALL_OPTS}[
            'default_numa_policy']
        self.assertEqual(list(request.NUMA_POLICIES),
                         [choice for choice, _ in opt.type.choices.items()])
        self.assertIn(opt.default, request.NUMA_POLICIES)


class PurityTest(testtools.TestCase):

    def test_imports_nothing_from_nova_oslo_or_libvirt(self):
        tree = ast.parse(inspect.getsource(request))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
        for name in imported:
            top = name.split('.')[0]
            self.assertNotIn(top, ('nova', 'libvirt', 'pynvml'), name)
            self.assertFalse(top.startswith('oslo'), name)
