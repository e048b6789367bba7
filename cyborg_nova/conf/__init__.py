"""Configuration: every option lives in the ``[accelerator]`` group, never in
one of Nova's groups.  ``register_opts(conf)`` adds them to a config object;
``list_opts()`` feeds oslo-config-generator."""

from cyborg_nova.conf import accelerator

register_opts = accelerator.register_opts
GROUP = accelerator.GROUP
