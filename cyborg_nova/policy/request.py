"""What a flavor asks of accelerators, read from its extra specs.

Devices are asked for with Nova's own syntax, which Placement understands::

    resources:PGPU=2                 two physical GPUs (unnumbered group)
    resources1:VGPU=1                one vGPU in request group 1
    resources:CUSTOM_ACCEL_FOO=1     any CUSTOM_ACCEL_* resource class
    trait:CUSTOM_NVLINK=required     trait{group}:NAME=required|forbidden

and the policy of placing them is set in our own ``accelerator:`` namespace
(``accel:`` belongs to Nova and Cyborg)::

    accelerator:numa_policy=required|preferred|none
    accelerator:link_policy=best_effort|strict

:func:`parse_extra_specs` turns a flavor's extra specs into an
:class:`AcceleratorRequest`, or raises
:class:`~cyborg_nova.errors.InvalidRequest` with a message for the user.
Keys about accelerators are checked strictly (Nova would silently drop a
malformed count and boot the server without its device); trait values are
checked when the flavor asks for accelerators, because they then constrain
where the devices come from.  Everything else is Nova's business and is left
alone, so flavors without accelerators parse exactly as Nova sees them.

This module is pure: it imports nothing from Nova, oslo or libvirt.
"""

import collections
import dataclasses
import re

import os_resource_classes as orc

from cyborg_nova import errors

NAMESPACE = 'accelerator'
NUMA_POLICY_KEY = NAMESPACE + ':numa_policy'
LINK_POLICY_KEY = NAMESPACE + ':link_policy'

#: Allowed values of each policy key, with what they mean (in order of
#: strictness).  The API validators are built from these.
NUMA_POLICIES = {
    'required': 'the guest must be NUMA-local to its devices, or the host '
                'is filtered out',
    'preferred': 'align the guest with its devices when possible, else '
                 'place it anywhere',
    'none': 'do not align the guest with its devices',
}
LINK_POLICIES = {
    'best_effort': 'prefer devices that share a link island (NVLink, one '
                   'PCIe switch), else take any',
    'strict': 'all devices of the request must be in one link island, or '
              'the host is filtered out',
}
POLICY_CHOICES = {
    NUMA_POLICY_KEY: NUMA_POLICIES,
    LINK_POLICY_KEY: LINK_POLICIES,
}
DEFAULT_LINK_POLICY = 'best_effort'

#: Standard resource classes that are accelerators; custom ones are those
#: starting with CUSTOM_ACCEL_.
ACCELERATOR_CLASSES = (orc.PGPU, orc.VGPU, orc.FPGA, orc.PCI_DEVICE)
CUSTOM_ACCELERATOR_PREFIX = orc.CUSTOM_NAMESPACE + 'ACCEL_'

TRAIT_VALUES = ('required', 'forbidden')

# The same pattern Nova uses (nova.scheduler.utils.ResourceRequest): an
# optional group suffix of 1 to 64 characters.
_GROUPED_KEY = re.compile(
    r'^(resources|trait)([a-zA-Z0-9_-]{1,64})?:(.*)$')

#: Group key of the unnumbered request group, as in Placement's mappings.
UNNUMBERED = ''


def is_accelerator_class(resource_class):
    """Whether a resource class names an accelerator."""
    return (resource_class in ACCELERATOR_CLASSES or
            (resource_class.startswith(CUSTOM_ACCELERATOR_PREFIX) and
             len(resource_class) > len(CUSTOM_ACCELERATOR_PREFIX)))


@dataclasses.dataclass(frozen=True)
class AcceleratorRequest:
    """The accelerators a flavor asks for, and how to place them.

    ``groups`` maps a request group suffix (``''`` for the unnumbered
    group, ``'1'`` for ``resources1:``...) to the accelerator counts asked
    in that group; ``resources`` sums them per resource class.  Zero counts
    are left out of both.  Traits are gathered from every group.
    """

    resources: dict[str, int] = dataclasses.field(default_factory=dict)
    groups: dict[str, dict[str, int]] = dataclasses.field(
        default_factory=dict)
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    numa_policy: str = 'preferred'
    link_policy: str = DEFAULT_LINK_POLICY

    @property
    def wants_devices(self):
        """Whether the flavor asks for at least one accelerator."""
        return bool(self.resources)

    @property
    def device_count(self):
        """How many accelerators the flavor asks for, all classes together."""
        return sum(self.resources.values())


def check_policy_spec(key, value):
    """Check one ``accelerator:`` extra spec on its own.

    :raises InvalidRequest: the key is not one of ours, or the value is not
        one of its allowed values.
    """
    choices = POLICY_CHOICES.get(key)
    if choices is None:
        raise errors.InvalidRequest(
            '%s is not a known extra spec: the known %s: keys are %s'
            % (key, NAMESPACE, ', '.join(POLICY_CHOICES)))
    if value not in choices:
        raise errors.InvalidRequest(
            '%s=%s is not valid: use one of %s'
            % (key, value, ', '.join(choices)))


def parse_extra_specs(extra_specs, default_numa_policy='preferred'):
    """Read the accelerator request out of a flavor's extra specs.

    :param extra_specs: the flavor's extra specs, names to string values.
    :param default_numa_policy: the NUMA policy when the flavor sets none
        (``[accelerator] default_numa_policy``).
    :returns: an :class:`AcceleratorRequest`.
    :raises InvalidRequest: with a message naming the offending key, its
        value and what is allowed.
    """
    if default_numa_policy not in NUMA_POLICIES:
        raise ValueError('default_numa_policy %r is not one of %s'
                         % (default_numa_policy, ', '.join(NUMA_POLICIES)))

    policies = {}
    groups = {}
    required, forbidden, bad_traits = set(), set(), []
    for key, value in sorted(extra_specs.items()):
        if key.startswith(NAMESPACE + ':'):
            check_policy_spec(key, value)
            policies[key] = value
            continue
        match = _GROUPED_KEY.match(key)
        if not match:
            continue
        prefix, group, name = match.groups()
        if prefix == 'resources':
            if is_accelerator_class(name):
                count = _count(key, value)
                if count:
                    groups.setdefault(group or UNNUMBERED, {})[name] = count
        elif value == 'required':
            required.add(name)
        elif value == 'forbidden':
            forbidden.add(name)
        else:
            bad_traits.append((key, value))

    resources = {}
    for counts in groups.values():
        for resource_class, count in counts.items():
            resources[resource_class] = (
                resources.get(resource_class, 0) + count)

    if policies and not resources:
        raise errors.InvalidRequest(
            '%s %s set but the flavor requests no accelerator: add '
            'resources:PGPU=1 (or VGPU, FPGA, PCI_DEVICE, CUSTOM_ACCEL_...)'
            % (' and '.join(policies), 'is' if len(policies) == 1 else 'are'))
    if resources and bad_traits:
        key, value = bad_traits[0]
        raise errors.InvalidRequest(
            '%s=%s is not valid: use one of %s'
            % (key, value, ', '.join(TRAIT_VALUES)))

    return AcceleratorRequest(
        resources=resources,
        groups=groups,
        required_traits=frozenset(required),
        forbidden_traits=frozenset(forbidden),
        numa_policy=policies.get(NUMA_POLICY_KEY, default_numa_policy),
        link_policy=policies.get(LINK_POLICY_KEY, DEFAULT_LINK_POLICY),
    )


def beyond_flavor(resource_classes, flavor_counts):
    """``{resource class: n}`` of the devices a server holds beyond what
    its flavor asks (those ``cyborg-nova attach`` added).
    *resource_classes* lists the class of each device it holds (a vGPU
    parent once per mdev); *flavor_counts* is the flavor's
    :attr:`AcceleratorRequest.resources`."""
    held = collections.Counter(resource_classes)
    return {rc: n - flavor_counts.get(rc, 0) for rc, n in sorted(held.items())
            if n > flavor_counts.get(rc, 0)}


def _count(key, value):
    """A resource count: a whole number, 0 or more."""
    try:
        count = int(str(value))
    except ValueError:
        count = -1
    if count < 0:
        raise errors.InvalidRequest(
            '%s=%s is not valid: the count must be a whole number, 0 or more'
            % (key, value))
    return count
