"""cyborg-nova: accelerator-aware scheduling and devices for OpenStack Nova.

Operators select the compute driver with::

    [DEFAULT]
    compute_driver = cyborg_nova.AcceleratedLibvirtDriver

Nova prefixes ``nova.virt.``; the one module this package ships inside Nova's
tree, ``nova/virt/cyborg_nova.py``, re-exports the driver from
:mod:`cyborg_nova.virt_hooks.driver`.

This module stays light on purpose: importing ``cyborg_nova`` imports
neither Nova nor libvirt, so the pure policy code and the command line tool
start fast.  ``__version__`` is computed on first access.
"""

__all__ = ['__version__']


def __getattr__(name):
    if name == '__version__':
        import pbr.version

        version = pbr.version.VersionInfo('cyborg-nova').version_string()
        globals()['__version__'] = version
        return version
    raise AttributeError('module %r has no attribute %r' % (__name__, name))
