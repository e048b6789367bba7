"""Keep accelerator hosts free for the servers that need accelerators.

A server whose flavor asks for no accelerator weighs each host by minus its
free accelerators: hosts without accelerators weigh most, then hosts with
the fewest free devices.  A server that asks for accelerators gets 0 from
this weigher (:mod:`cyborg_nova.weighers.spread` weighs those).

Nova normalises each weigher's weights to 0..1 over the hosts being weighed
and then multiplies them, so between a host without accelerators and the
host with the most free ones this weigher always contributes the full
multiplier, whatever the device counts.  The default multiplier
(``[accelerator] stranding_weight_multiplier`` = 10.0) is larger than the
sum of Nova's default RAM, CPU, disk, I/O-ops, PCI and hypervisor-version
multipliers (1.0 each), so ordinary servers fill hosts without accelerators
first instead of being spread onto accelerator hosts by RAM and CPU.
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

OPTION = 'stranding_weight_multiplier'


class AcceleratorStrandingWeigher(weights.BaseHostWeigher):
    """Servers without accelerators prefer hosts with no free ones."""

    def __init__(self):
        self._requests = accelerator_filter.RequestCache()

    def weight_multiplier(self, host_state):
        return utils.get_weight_multiplier(
            host_state, OPTION, CONF.accelerator.stranding_weight_multiplier)

    def weigh_objects(self, weighed_obj_list, request_spec):
        # What depends on the request only is read once, not per host.
        wanted = self._requests.get(request_spec.flavor.extra_specs)
        if isinstance(wanted, errors.InvalidRequest) or wanted.resources:
            LOG.debug('Stranding weight 0 for %(count)d hosts: the server '
                      'asks for accelerators',
                      {'count': len(weighed_obj_list)})
            return [0.0] * len(weighed_obj_list)
        debug = LOG.isEnabledFor(logging.DEBUG)
        return [self._weigh(obj.obj, debug) for obj in weighed_obj_list]

    def _weigh_object(self, host_state, request_spec):
        return self.weigh_objects([weights.WeighedHost(host_state, 0.0)],
                                  request_spec)[0]

    @staticmethod
    def _weigh(host_state, debug):
        free = host_stats.decode(getattr(host_state, 'stats', None)).free
        if debug:
            LOG.debug('%(host)s: stranding weight %(weight)d: %(free)d free '
                      'accelerators, and the server asks for none',
                      {'host': host_state, 'weight': -free, 'free': free})
        return -float(free)
