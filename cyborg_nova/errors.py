"""Typed errors.  Every message says what was wrong, with the value, and
what to do about it."""


class CyborgNovaError(Exception):
    """Base class of the package's errors."""


class SysfsError(CyborgNovaError):
    """A sysfs attribute is missing, unreadable or malformed."""

    def __init__(self, path, value, why):
        self.path = path
        self.value = value
        self.why = why
        super().__init__('%s: %r %s' % (path, value, why))


class DriverError(CyborgNovaError):
    """A device driver failed to load, discover or act on a device."""


class DeviceNotFound(DriverError):
    """A device named by address is not (or no longer) on this host."""


class NotAssignable(DriverError):
    """A device may not be handed to a guest; ``reasons`` say why."""

    def __init__(self, address, reasons):
        self.address = address
        self.reasons = tuple(reasons)
        super().__init__('device %s may not be given to a guest: %s'
                         % (address, '; '.join(self.reasons)))


class ConfigError(CyborgNovaError):
    """An [accelerator] option has a value that cannot be used."""


class InvalidRequest(CyborgNovaError):
    """A flavor's accelerator extra specs cannot be honoured as written."""
