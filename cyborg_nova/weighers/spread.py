"""Spread servers with accelerators over the hosts with most free, least
loaded devices of the classes they ask for.

For a server whose flavor asks for accelerators of classes *C*::

    weight = sum over the host's locality groups g of a class in C of
             free(g) * (1 - load_weight * load(g) / 100)

``free(g)`` is the group's free healthy devices, ``load(g)`` the mean load
of its devices in percent as the host reports it (0 when unknown, clamped
to 0..100), ``load_weight`` is ``[accelerator] load_weight`` (0..1, default
0.5): at 0.5 a free device in a fully loaded group counts half.  Servers
without accelerators get 0 from this weigher (see
:mod:`cyborg_nova.weighers.stranding`).

A request group asking for *k* > 1 devices of a class is best served from
one link island (NVLink island or PCIe switch): when the largest free
island of the host's groups of that class holds *i* < *k* devices, the
weight is multiplied by *i*/*k* (divided, when a negative multiplier
packs), so a host that can only serve the request with a worse topology
ranks below an equal host that can serve it within one island.  A host
that does not report islands is not discounted.

The multiplier is ``[accelerator] spread_weight_multiplier`` (default 1.0,
overridable per host aggregate with the metadata key
``spread_weight_multiplier``); a negative multiplier packs such servers
onto the hosts with the fewest free devices instead.
"""

from oslo_log import log as logging

import nova.conf
from nova.scheduler import utils
from nova.scheduler import weights

from cyborg_nova import conf as cn_conf
from cyborg_nova import errors
from cyborg_nova.filters import accelerator_filter
from cyborg_nova.policy import host_stats

LOG = logging.getLogger(__name__)

CONF = nova.conf.CONF
cn_conf.register_opts(CONF)

OPTION = 'spread_weight_multiplier'


class AcceleratorSpreadWeigher(weights.BaseHostWeigher):
    """Servers with accelerators prefer free, idle devices of their
    classes."""

    def __init__(self):
        self._requests = accelerator_filter.RequestCache()

    def weight_multiplier(self, host_state):
        return utils.get_weight_multiplier(
            host_state, OPTION, CONF.accelerator.spread_weight_multiplier)

    def weigh_objects(self, weighed_obj_list, request_spec):
        # What depends on the request only is read once, not per host.
        wanted = self._requests.get(request_spec.flavor.extra_specs)
        if isinstance(wanted, errors.InvalidRequest) or not wanted.resources:
            LOG.debug('Spread weight 0 for %(count)d hosts: the server asks '
                      'for no accelerator', {'count': len(weighed_obj_list)})
            return [0.0] * len(weighed_obj_list)
        load_weight = CONF.accelerator.load_weight
        debug = LOG.isEnabledFor(logging.DEBUG)
        return [self._weigh(obj.obj, wanted, load_weight, debug)
                for obj in weighed_obj_list]

    def _weigh_object(self, host_state, request_spec):
        return self.weigh_objects([weights.WeighedHost(host_state, 0.0)],
                                  request_spec)[0]

    def _weigh(self, host_state, wanted, load_weight, debug):
        summary = host_stats.decode(getattr(host_state, 'stats', None))
        weight = 0.0
        free = 0
        for group in summary.groups:
            if group.resource_class not in wanted.resources or not group.free:
                continue
            load = min(100.0, max(0.0, group.load or 0.0))
            weight += group.free * (1.0 - load_weight * load / 100.0)
            free += group.free
        fit = _island_fit(wanted, summary)
        if fit < 1.0:
            # Packing (a negative multiplier) prefers low weights: a poor
            # fit must then raise the weight.
            if self.weight_multiplier(host_state) >= 0:
                weight *= fit
            else:
                weight /= fit
        if debug:
            LOG.debug('%(host)s: spread weight %(weight).2f: %(free)d free '
                      'devices of %(classes)s, discounted by load '
                      '(load_weight %(load_weight)s) and by link islands '
                      '(x%(fit).2f)',
                      {'host': host_state, 'weight': weight, 'free': free,
                       'classes': ','.join(sorted(wanted.resources)),
                       'load_weight': load_weight, 'fit': fit})
        return weight


def _island_fit(wanted, summary):
    """min over the multi-device request groups of (largest free island of
    the host for the class / devices asked), at most 1."""
    fit = 1.0
    for counts in wanted.groups.values():
        for resource_class, count in counts.items():
            if count < 2:
                continue
            islands = [g.largest_free_island for g in summary.groups
                       if g.resource_class == resource_class and g.free]
            if not islands or None in islands:
                continue
            fit = min(fit, min(1.0, max(islands) / count))
    return fit
