"""cyborg-nova's scheduler weighers.

Nova loads them through ``[filter_scheduler] weight_classes``, a list of
dotted paths to weigher classes or to functions returning them::

    [filter_scheduler]
    weight_classes = nova.scheduler.weights.all_weighers,
                     cyborg_nova.weighers.all_weighers

(one line, or continued as here: oslo.config joins indented lines).
Their multipliers are ``[accelerator] stranding_weight_multiplier`` and
``spread_weight_multiplier``, overridable per host aggregate with metadata
keys of the same names.
"""


def all_weighers():
    """The weigher classes of cyborg-nova."""
    from cyborg_nova.weighers import spread
    from cyborg_nova.weighers import stranding
    return [stranding.AcceleratorStrandingWeigher,
            spread.AcceleratorSpreadWeigher]
