"""What the scheduler filters read of a host's Placement candidates: which
of cyborg-nova's locality groups each candidate's accelerator providers are,
and so on which NUMA nodes its devices lie.

Shared by :mod:`~cyborg_nova.filters.accelerator_filter` and
:mod:`~cyborg_nova.filters.numa_topology_filter`; imports nothing from Nova.
"""

from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import request

_CACHE_LIMIT = 10000


class ProviderMaps:
    """``{provider uuid: GroupSummary}`` per host, kept while the host
    reports the same summary text (compared by content), so a host's map
    is built once per change of what it reports."""

    def __init__(self):
        self._maps = {}         # host uuid -> (summary text, map or None)

    def get(self, host_state, stats=None, summary=None):
        """The host's map, or None when it reports no accelerators.
        *stats* and *summary* may be passed when the caller has them."""
        if stats is None:
            stats = getattr(host_state, 'stats', None)
        text = stats.get(host_stats.STATS_KEY) if stats else None
        if not text:
            return None
        root = host_state.uuid
        cached = self._maps.get(root)
        if cached is not None and cached[0] == text:
            return cached[1]
        if summary is None:
            summary = host_stats.decode(stats)
        providers = None
        if summary.groups:
            providers = {inventory.provider_uuid(root, g.suffix): g
                         for g in summary.groups}
        if len(self._maps) >= _CACHE_LIMIT:
            self._maps.clear()
        self._maps[root] = (text, providers)
        return providers


def device_nodes(allocations, providers):
    """The NUMA nodes of a candidate's accelerator providers, or why the
    candidate cannot be used: ``(frozenset, None)`` or ``(None, why)``
    (*why* a ``(format, args)`` pair, formatted only if logged).  A node is
    None when the host does not know it."""
    nodes = []
    for rp_uuid, allocation in allocations.items():
        resources = allocation['resources']
        group = providers.get(rp_uuid)
        if group is None:
            for resource_class in resources:
                if request.is_accelerator_class(resource_class):
                    return None, ('provider %s of %s is not one of the '
                                  'host\'s accelerator groups',
                                  (rp_uuid, resource_class))
            continue
        healthy = group.total - group.reserved
        if resources.get(group.resource_class, 0) > healthy:
            return None, ('group %s has %d healthy of %d devices',
                          (group.suffix, max(0, healthy), group.total))
        nodes.append(group.numa_node)
    return frozenset(nodes), None
