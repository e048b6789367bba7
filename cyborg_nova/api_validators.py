"""Flavor extra-spec validators for the ``accelerator:`` namespace.

Nova loads this module through the ``nova.api.extra_spec_validators``
entry-point namespace (see ``setup.cfg``) and calls :func:`register`.  With
our validators registered, the flavor extra-specs API (microversion 2.86 and
later) refuses

* a bad value, e.g. ``accelerator:numa_policy=bogus``, with our message
  naming the key, the value and the allowed values;
* an unknown key in our namespace, e.g. ``accelerator:unknown``: Nova's own
  ``validators.validate()`` refuses any key of a namespace it has
  validators for but no validator matching the key.

The device counts themselves (``resources{group}:PGPU`` ...) and traits are
checked by Nova's own ``resources`` and ``traits`` validators.

What the API cannot check (Nova 34)
-----------------------------------
Nova validates extra specs one key at a time: ``validators.validate(name,
value)``, called by ``FlavorExtraSpecsController._check_extra_specs_value``
for each key of the request body, before the body is merged into the specs
the flavor already has.  No hook sees a flavor's specs as a whole, at the
API or at boot (``compute.API._validate_flavor_image_nostatus`` is a fixed
list of Nova's own checks).  A cross-key rule could not live at the API
anyway: specs are set and deleted one call at a time, in any order (setting
``accelerator:numa_policy`` before ``resources:PGPU``, or deleting
``resources:PGPU`` afterwards, is normal and deletes are not validated), and
requests at microversions before 2.86 are not validated at all.

So "a policy is set but the flavor requests no accelerator" (and a bad value
left by an old-microversion client) is reported when a server is booted:
:func:`cyborg_nova.policy.request.parse_extra_specs`, which the scheduler
filter calls for every request, raises
:class:`~cyborg_nova.errors.InvalidRequest` with the same kind of message.
"""

from nova.api.validation.extra_specs import base
from nova import exception

from cyborg_nova import errors
from cyborg_nova.policy import request


class AcceleratorPolicyValidator(base.ExtraSpecValidator):
    """Nova's enum validator, refusing with the message users get at boot.

    Nova's own message ("'bogus' is not one of: ...") does not say which
    key was wrong; ours does.
    """

    def validate(self, name, value):
        try:
            request.check_policy_spec(name, value)
        except errors.InvalidRequest as exc:
            raise exception.ValidationError(detail=str(exc))
        super().validate(name, value)


def _policy_validator(key, what, choices, default):
    values = '; '.join('``%s``: %s' % item for item in choices.items())
    return AcceleratorPolicyValidator(
        name=key,
        description='%s (cyborg-nova). %s. Default: %s.' % (
            what, values, default),
        value={
            'type': str,
            'description': what,
            'enum': list(choices),
        },
    )


EXTRA_SPEC_VALIDATORS = [
    _policy_validator(
        request.NUMA_POLICY_KEY,
        'How strictly the guest is placed on the NUMA node of its '
        'accelerators',
        request.NUMA_POLICIES,
        'the ``[accelerator] default_numa_policy`` option (``preferred``)'),
    _policy_validator(
        request.LINK_POLICY_KEY,
        'Whether the accelerators of a server must share a link island '
        '(NVLink, one PCIe switch)',
        request.LINK_POLICIES,
        '``%s``' % request.DEFAULT_LINK_POLICY),
]


def register():
    """The validators of the ``accelerator:`` namespace, for Nova."""
    return EXTRA_SPEC_VALIDATORS
