"""Adapters between Nova's libvirt driver and cyborg-nova.

Nothing here is imported by ``cyborg_nova`` itself: importing this package
(or :mod:`cyborg_nova.virt_hooks.driver`) imports Nova.
"""
