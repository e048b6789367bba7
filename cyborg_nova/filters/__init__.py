"""cyborg-nova's scheduler filters.

Nova loads them through ``[filter_scheduler] available_filters``, a
MultiStrOpt whose values are dotted paths to a filter class or to a function
returning filter classes (``nova.loadables.BaseLoader.
get_matching_classes``); ``enabled_filters`` then names classes by their
bare ``__name__``::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = cyborg_nova.filters.all_filters
    enabled_filters = ComputeFilter,...,AcceleratorNUMAFilter,...

``enabled_filters`` ends with ``AcceleratorNUMAFilter`` then
``AcceleratorAwareNUMATopologyFilter``, which replaces Nova's
``NUMATopologyFilter`` (enable one of the two, not both).
"""


def all_filters():
    """The filter classes of cyborg-nova."""
    # Imported here so that importing the package (for instance by
    # oslo-config-generator or the compute host) does not import Nova's
    # scheduler.
    from cyborg_nova.filters import accelerator_filter
    from cyborg_nova.filters import numa_topology_filter
    return [accelerator_filter.AcceleratorNUMAFilter,
            numa_topology_filter.AcceleratorAwareNUMATopologyFilter]
