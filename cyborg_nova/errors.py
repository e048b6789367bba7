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


class NumaFitError(CyborgNovaError):
    """A guest cannot be placed NUMA-local to its devices and its NUMA
    policy is ``required``; ``nodes`` are the host NUMA nodes concerned."""

    def __init__(self, message, nodes=()):
        self.nodes = tuple(nodes)
        super().__init__(message)


class MdevError(DriverError):
    """A mediated device (vGPU) could not be created or removed."""

    def __init__(self, message, parent=None, mdev_type=None):
        self.parent = parent
        self.mdev_type = mdev_type
        super().__init__(message)


class MdevTypeUnknown(MdevError):
    """The parent device does not offer the mdev type."""


class MdevUnavailable(MdevError):
    """The parent device has no instance of the mdev type left."""


class MdevWriteFailed(MdevError):
    """The kernel refused the write that creates or removes an mdev."""


class NoFreeDevice(CyborgNovaError):
    """Placement allocated devices the host cannot find free any more."""
