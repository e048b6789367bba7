"""What a device is, in Placement's words: its resource class and the traits
that say what it is and where it sits.

Standard names come from os-resource-classes and os-traits; ``CUSTOM_``
names are built only where no standard one exists.
"""

import os_resource_classes as orc
import os_traits

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
