"""Pure scheduling and placement policy: plain data in, plain data out.

Nothing under this package imports Nova, oslo or libvirt."""
