"""``accelerator:`` flavor extra specs through Nova's real os-extra_specs API.

Mirrors Nova's own ``nova/tests/functional/test_flavor_extraspecs.py``.
Nova validates extra specs from microversion 2.86 on, with the validators
its loader found under the ``nova.api.extra_spec_validators`` entry point.
"""

from nova.api.validation.extra_specs import validators
from nova.tests.functional.api import client as api_client
from nova.tests.functional import integrated_helpers


class AcceleratorExtraSpecsTest(integrated_helpers._IntegratedTestBase):
    """Operators set accelerator specs on a flavor; Nova checks them."""

    ADMIN_API = True
    microversion = '2.86'

    def setUp(self):
        super().setUp()
        self.assertIn(
            'accelerator:numa_policy', validators.VALIDATORS,
            'Nova did not load our validators: install the package '
            '(pip install --no-deps --no-build-isolation .)')
        self.flavor_id = self._create_flavor()

    def _refused(self, call, *args):
        exc = self.assertRaises(
            api_client.OpenStackApiException, call, self.flavor_id, *args)
        self.assertEqual(400, exc.response.status_code)
        return exc.response.json()['badRequest']['message']

    def test_good_values_are_stored(self):
        specs = {'resources:PGPU': '2',
                 'accelerator:numa_policy': 'required',
                 'accelerator:link_policy': 'strict'}
        self.admin_api.post_extra_spec(self.flavor_id, {'extra_specs': specs})
        self.assertEqual(specs, self.admin_api.get_extra_specs(self.flavor_id))

    def test_one_good_value_is_updated(self):
        body = {'accelerator:link_policy': 'best_effort'}
        self.admin_api.put_extra_spec(
            self.flavor_id, 'accelerator:link_policy', body)
        self.assertEqual(body, self.admin_api.get_extra_spec(
            self.flavor_id, 'accelerator:link_policy'))

    def test_bogus_numa_policy_is_refused_naming_it(self):
        message = self._refused(
            self.admin_api.post_extra_spec,
            {'extra_specs': {'resources:PGPU': '1',
                             'accelerator:numa_policy': 'bogus'}})
        self.assertIn('accelerator:numa_policy=bogus is not valid: use one '
                      'of required, preferred, none', message)
        # ...and nothing of the request is saved.
        self.assertEqual({}, self.admin_api.get_extra_specs(self.flavor_id))

    def test_bogus_link_policy_update_is_refused_naming_it(self):
        message = self._refused(
            self.admin_api.put_extra_spec, 'accelerator:link_policy',
            {'accelerator:link_policy': 'loose'})
        self.assertIn('accelerator:link_policy=loose is not valid: use one '
                      'of best_effort, strict', message)

    def test_unknown_key_in_our_namespace_is_refused(self):
        message = self._refused(
            self.admin_api.post_extra_spec,
            {'extra_specs': {'accelerator:unknown': '1'}})
        self.assertIn("'accelerator:unknown'", message)
        self.assertEqual({}, self.admin_api.get_extra_specs(self.flavor_id))

    def test_policy_without_devices_is_left_to_boot_time(self):
        # Nova checks one key at a time and specs arrive in any order, so
        # the API accepts a policy before the devices it applies to;
        # parse_extra_specs refuses such a flavor when a server boots.
        body = {'extra_specs': {'accelerator:numa_policy': 'none'}}
        self.admin_api.post_extra_spec(self.flavor_id, body)
        self.assertEqual(body['extra_specs'],
                         self.admin_api.get_extra_specs(self.flavor_id))


class AcceleratorExtraSpecsBefore286Test(
        integrated_helpers._IntegratedTestBase):
    """Before 2.86 Nova validates no extra spec, ours included."""

    ADMIN_API = True
    microversion = '2.85'

    def test_bogus_value_is_stored_unchecked(self):
        flavor_id = self._create_flavor()
        specs = {'resources:PGPU': '1', 'accelerator:numa_policy': 'bogus'}
        self.admin_api.post_extra_spec(flavor_id, {'extra_specs': specs})
        self.assertEqual(specs, self.admin_api.get_extra_specs(flavor_id))
