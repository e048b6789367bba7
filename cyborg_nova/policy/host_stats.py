"""The accelerator summary a compute host passes to the scheduler.

The virt driver's ``get_available_resource()`` returns it in ``stats``;
Nova stores it in ``ComputeNode.stats`` and the scheduler sees it as
``HostState.stats``.  Stats values are strings, so the summary is one
compact JSON string under :data:`STATS_KEY`.  Decoding is cached on the
string itself: the scheduler decodes each host's summary once per change,
not once per request.
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
    return {STATS_KEY: json.dumps({'v': _FORMAT, 'groups': rows},
                                  separators=(',', ':'))}


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
        return HostSummary(tuple(GroupSummary(*row)
                                 for row in data['groups']))
    except (ValueError, TypeError, KeyError, AttributeError):
        return EMPTY
