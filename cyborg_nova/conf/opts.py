"""Entry point of oslo-config-generator (``oslo.config.opts`` namespace)."""

from cyborg_nova.conf import accelerator


def list_opts():
    return [(accelerator.accelerator_group, accelerator.ALL_OPTS)]
