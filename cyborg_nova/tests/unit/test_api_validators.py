"""Validators of the ``accelerator:`` extra specs, through Nova's machinery."""

import fixtures
from nova.api.validation.extra_specs import base
from nova.api.validation.extra_specs import validators
from nova import exception
from stevedore import extension
import testscenarios
import testtools

from cyborg_nova import api_validators
from cyborg_nova.policy import request

NAMESPACE = 'nova.api.extra_spec_validators'
NOT_INSTALLED = (
    'the nova.api.extra_spec_validators entry point "accelerator" is '
    'missing: install the package (pip install --no-deps '
    '--no-build-isolation .)')


class NovaValidatorsFixture(fixtures.Fixture):
    """Nova's validator registry, loaded afresh by Nova's own loader.

    The registry is module state in Nova; it is restored afterwards.
    """

    def _setUp(self):
        saved = dict(validators.VALIDATORS), set(validators.NAMESPACES)
        self.addCleanup(self._restore, *saved)
        validators.VALIDATORS.clear()
        validators.NAMESPACES.clear()
        validators.load_validators()

    @staticmethod
    def _restore(saved_validators, saved_namespaces):
        validators.VALIDATORS.clear()
        validators.VALIDATORS.update(saved_validators)
        validators.NAMESPACES.clear()
        validators.NAMESPACES.update(saved_namespaces)


class RegisterTest(testtools.TestCase):

    def test_registers_one_validator_per_policy_key(self):
        got = {v.name: v for v in api_validators.register()}
        self.assertEqual(set(request.POLICY_CHOICES), set(got))
        for key, choices in request.POLICY_CHOICES.items():
            self.assertIsInstance(got[key], base.ExtraSpecValidator)
            self.assertEqual(str, got[key].value['type'])
            self.assertEqual(list(choices), got[key].value['enum'])
            for choice in choices:  # documented in Nova's listing
                self.assertIn('``%s``' % choice, got[key].description)

    def test_entry_point_points_nova_at_this_module(self):
        mgr = extension.ExtensionManager(NAMESPACE, invoke_on_load=False)
        self.assertIn('accelerator', mgr.names(), NOT_INSTALLED)
        self.assertIs(api_validators, mgr['accelerator'].plugin)

    def test_novas_loader_registers_our_namespace(self):
        self.useFixture(NovaValidatorsFixture())
        for key in request.POLICY_CHOICES:
            self.assertIn(key, validators.VALIDATORS, NOT_INSTALLED)
        self.assertIn('accelerator', validators.NAMESPACES)
        # Nova's own namespaces still load beside ours.
        self.assertIn('accel:device_profile', validators.VALIDATORS)


class ValidateTest(testscenarios.WithScenarios, testtools.TestCase):
    """``validators.validate(name, value)``, as the flavor API calls it."""

    scenarios = [
        ('numa_policy required',
         dict(name='accelerator:numa_policy', value='required', error=None)),
        ('numa_policy preferred',
         dict(name='accelerator:numa_policy', value='preferred', error=None)),
        ('numa_policy none',
         dict(name='accelerator:numa_policy', value='none', error=None)),
        ('link_policy best_effort',
         dict(name='accelerator:link_policy', value='best_effort',
              error=None)),
        ('link_policy strict',
         dict(name='accelerator:link_policy', value='strict', error=None)),
        ('unknown numa_policy names key, value and choices',
         dict(name='accelerator:numa_policy', value='bogus',
              error='accelerator:numa_policy=bogus is not valid: use one of '
                    'required, preferred, none')),
        ('numa_policy is case-sensitive',
         dict(name='accelerator:numa_policy', value='NONE',
              error='accelerator:numa_policy=NONE is not valid')),
        ('unknown link_policy',
         dict(name='accelerator:link_policy', value='strictest',
              error='accelerator:link_policy=strictest is not valid: use '
                    'one of best_effort, strict')),
        ('unknown key in our namespace is refused by Nova',
         dict(name='accelerator:unknown', value='1',
              error="extra spec 'accelerator:unknown' does not appear to "
                    "be a valid extra spec")),
        ('misspelt key is refused by Nova',
         dict(name='accelerator:numa-policy', value='required',
              error="'accelerator:numa-policy'")),
        ('Nova still owns accel:',
         dict(name='accel:device_profile', value='gpu', error=None)),
        ('a namespace that merely starts like ours is not ours',
         dict(name='accelerators:numa_policy', value='bogus', error=None)),
        ('device counts are Nova resources validators',
         dict(name='resources1:PGPU', value='2', error=None)),
        ('bad device counts are refused by Nova',
         dict(name='resources:PGPU', value='two',
              error="'two' is not a valid integer value")),
        ('CUSTOM_ACCEL_ classes are Nova custom resources',
         dict(name='resources:CUSTOM_ACCEL_NPU', value='1', error=None)),
    ]

    def setUp(self):
        super().setUp()
        self.useFixture(NovaValidatorsFixture())

    def test_validate(self):
        if self.error is None:
            validators.validate(self.name, self.value)
        else:
            exc = self.assertRaises(exception.ValidationError,
                                    validators.validate, self.name,
                                    self.value)
            self.assertIn(self.error, str(exc))
