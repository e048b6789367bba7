"""Which devices the operator allows to be handed to guests."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Allowlist:
    """``classes``: PCI class prefixes (hex); ``devices``: ``vendor:product``
    ids, ``*`` for any product; ``denied``: addresses never allowed."""

    classes: tuple = ()
    devices: tuple = ()
    denied: tuple = ()

    @classmethod
    def from_options(cls, classes, devices, denied):
        return cls(
            classes=tuple(filter(None, (c.lower().replace('0x', '')
                                        for c in classes))),
            devices=tuple(d.lower().replace('0x', '') for d in devices),
            denied=tuple(a.lower() for a in denied))

    def why_not(self, address, vendor_id, product_id, class_id):
        """None when allowed, else the reason, naming the option to change."""
        if address in self.denied:
            return ('listed in [accelerator] denied_addresses')
        if any(class_id.startswith(c) for c in self.classes):
            return None
        for entry in self.devices:
            vendor, _, product = entry.partition(':')
            if vendor == vendor_id and product in ('*', product_id):
                return None
        return ('not allowed by config: PCI class %s is not in [accelerator] '
                'allowed_classes and %s:%s is not in [accelerator] '
                'allowed_devices' % (class_id or '?', vendor_id or '?',
                                     product_id or '?'))
