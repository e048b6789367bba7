"""Device drivers: plugins in the ``cyborg_nova.drivers`` entry-point
namespace.  See :mod:`cyborg_nova.drivers.base` for the contract."""
