"""The accelerator summary a compute host passes to the scheduler.

The virt driver's ``get_available_resource()`` returns it in ``stats``;
Nova stores it in ``ComputeNode.stats`` and the scheduler sees it as
``HostState.stats``.  Stats values are strings, so the summary is one
compact JSON string under :data:`STATS_KEY`.  Decoding is cached on the
string itself: the scheduler decodes each host's summary once per change,
not once per request.

Compatibility: ``groups`` rows keep their seven fields; facts added later
go in keys of their own, aligned with ``groups`` (``islands``: each group's
largest free link island), which older schedulers ignore and which decode
as None when an older compute does not send them.
"""

import dataclasses
import json

STATS_KEY = 'cyborg_nova_accelerators'
_FORMAT = 1
_CACHE_LIMIT = 100000
_cache = {}


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """One locality group as the scheduler sees it."""

    suffix: str              # provider name suffix; uuid derives from it
    resource_class: str
    numa_node: int | None
    total: int
    free: int
    reserved: int            # unhealthy or no longer assignable
    load: float | None       # percent, mean of the group's devices
    #: Most free devices in one link island (None: the host does not say).
    largest_free_island: int | None = None


@dataclasses.dataclass(frozen=True)
class HostSummary:
    groups: tuple = ()

    @property
    def free(self):
        return sum(g.free for g in self.groups)

    def free_of(self, resource_class):
        return sum(g.free for g in self.groups
                   if g.resource_class == resource_class)

    def load(self):
        """Mean load over the groups that report one, or None."""
        loads = [g.load for g in self.groups if g.load is not None]
        return sum(loads) / len(loads) if loads else None


EMPTY = HostSummary()


def encode(groups):
    """``{STATS_KEY: json}`` from :class:`~.inventory.LocalityGroup` s."""
    rows = [[g.key.suffix, g.key.resource_class, g.key.numa_node, g.total,
             g.free, g.reserved,
             None if g.load is None else round(g.load, 1)]
            for g in groups]
    islands = [getattr(g, 'largest_free_island', None) for g in groups]
    data = {'v': _FORMAT, 'groups': rows}
    if any(n is not None for n in islands):
        data['islands'] = islands
    return {STATS_KEY: json.dumps(data, separators=(',', ':'))}


def decode(stats):
    """The :class:`HostSummary` in a host's stats (EMPTY when none or
    unreadable: a host that reports nothing offers nothing)."""
    text = stats.get(STATS_KEY) if stats else None
    if not text:
        return EMPTY
    summary = _cache.get(text)
    if summary is None:
        summary = _decode(text)
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[text] = summary
    return summary


def _decode(text):
    try:
        data = json.loads(text)
        if data.get('v') != _FORMAT:
            return EMPTY
        rows = data['groups']
        islands = data.get('islands')
        if not isinstance(islands, list) or len(islands) != len(rows):
            islands = [None] * len(rows)
        return HostSummary(tuple(
            GroupSummary(*row, largest_free_island=island)
            for row, island in zip(rows, islands)))
    except (ValueError, TypeError, KeyError, AttributeError):
        return EMPTY
