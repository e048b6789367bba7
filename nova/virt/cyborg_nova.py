"""Entry point of cyborg-nova's compute driver inside Nova's namespace.

Nova always loads ``'nova.virt.' + CONF.compute_driver``, so operators write
``compute_driver = cyborg_nova.AcceleratedLibvirtDriver`` and Nova imports
this module.  It is the only file cyborg-nova installs under ``nova/``; the
code lives in :mod:`cyborg_nova.virt_hooks.driver`.
"""

from cyborg_nova.virt_hooks.driver import AcceleratedLibvirtDriver  # noqa
