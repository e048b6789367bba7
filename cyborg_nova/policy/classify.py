"""What a device is, in Placement's words: its resource class and the traits
that say what it is and where it sits.

Standard names come from os-resource-classes and os-traits; ``CUSTOM_``
names are built only where no standard one exists.
"""

import re

import os_resource_classes as orc
import os_traits

from cyborg_nova import errors
from cyborg_nova.policy import request

#: PCI class prefixes and the resource class a whole device of that class is.
CLASS_PREFIX_RESOURCE_CLASSES = (
    ('0300', orc.PGPU),      # VGA-compatible display controller
    ('0302', orc.PGPU),      # 3D controller (data-centre GPUs)
    ('0380', orc.PGPU),      # other display controller
    ('1200', orc.FPGA),      # processing accelerator
)


def custom_name(*parts):
    """``custom_name('pci', '10de')`` -> ``'CUSTOM_PCI_10DE'``."""
    return os_traits.normalize_name('_'.join(str(p) for p in parts))


def resource_class(vendor_id, product_id, class_id, overrides=None):
    """The resource class of a whole device.

    *overrides* maps ``'vendor:product'`` (``'vendor:*'`` for any product)
    to a resource class name; the operator's word wins over the PCI class.
    """
    for key in ('%s:%s' % (vendor_id, product_id), '%s:*' % vendor_id):
        if overrides and key in overrides:
            return overrides[key]
    for prefix, rc in CLASS_PREFIX_RESOURCE_CLASSES:
        if class_id.startswith(prefix):
            return rc
    return orc.PCI_DEVICE


def identity_traits(vendor_id, product_id):
    """Traits naming what the device is: vendor and product."""
    return {custom_name('PCI_VENDOR', vendor_id),
            custom_name('PCI_PRODUCT', vendor_id, product_id)}


def numa_trait(node):
    """Trait naming the NUMA node a device sits on."""
    return custom_name('ACCEL_NUMA_NODE', node)


def cuda_capability_trait(major, minor):
    """The os-traits trait for a CUDA compute capability, standard when
    os-traits has it (up to 7.2 today), ``CUSTOM_`` otherwise."""
    name = 'HW_GPU_CUDA_COMPUTE_CAPABILITY_V%d_%d' % (major, minor)
    return name if name in _STANDARD_TRAITS else custom_name(name)


_STANDARD_TRAITS = frozenset(os_traits.get_traits())


def valid_resource_class(name):
    return name in orc.STANDARDS or orc.is_custom(name)


_DEVICE_KEY = re.compile(r'^[0-9a-f]{4}:([0-9a-f]{4}|\*)$')


def check_overrides(entries):
    """``[accelerator] resource_classes`` entries
    (``VENDOR:PRODUCT=RESOURCE_CLASS``, ``*`` for any product), checked:
    hex ids, accelerator resource classes (PGPU, FPGA, PCI_DEVICE,
    ``CUSTOM_ACCEL_*``: what flavors and the scheduler filter treat as
    accelerators), never VGPU (vGPUs are the mdev types of
    ``enabled_mdev_types``).  Returns
    ``{'vendor:product': resource class}`` with lower-case keys, as
    :func:`resource_class` takes it; raises ConfigError naming the entry
    and what to write instead."""
    checked = {}
    for entry in entries or ():
        where = '[accelerator] resource_classes entry %r' % entry
        key, sep, value = entry.partition('=')
        key, value = key.strip().lower(), value.strip()
        if not sep or not _DEVICE_KEY.match(key):
            raise errors.ConfigError(
                '%s is not VENDOR:PRODUCT=RESOURCE_CLASS with hex ids (write '
                'for example 10de:2330=CUSTOM_H100 or 1172:*=FPGA)' % where)
        if value == orc.VGPU:
            raise errors.ConfigError(
                '%s: VGPU is not for whole devices; vGPUs come from the mdev '
                'types named in [accelerator] enabled_mdev_types' % where)
        if not (valid_resource_class(value) and
                request.is_accelerator_class(value)):
            raise errors.ConfigError(
                '%s: %r is not an accelerator resource class; use PGPU, '
                'FPGA, PCI_DEVICE or CUSTOM_ACCEL_<NAME> in capitals (a '
                'flavor then asks resources:CUSTOM_ACCEL_<NAME>=1)'
                % (where, value))
        checked[key] = value
    return checked
