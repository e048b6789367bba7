"""Tells people when an accelerator turns unhealthy or recovers.

Called at every periodic resource update with the devices just
discovered.  The inventory update that follows reserves unhealthy devices
in Placement (:mod:`cyborg_nova.policy.inventory`), so they are not given
to new servers; this module reports the change, once per change (see
:func:`cyborg_nova.policy.reconcile.health_transitions`):

* a warning in the compute log naming the device and the reason, and the
  server that holds it;
* for a server holding the device, an instance action, the record an
  operator and the server's owner see with ``openstack server event list
  SERVER`` (action ``accelerator_unhealthy``, message ``Error``) and
  ``openstack server event show SERVER REQUEST_ID`` (event
  ``accelerator_<address>`` with the reason in ``details``, microversion
  2.84 and later).  Recovery adds an ``accelerator_recovered`` action.

The server is left as it is (not put in ERROR): its workload may still run,
and its owner decides when to move it.  What was reported last survives a
nova-compute restart in those instance actions, so a restart does not
report the same change again.
"""

from nova import context as nova_context
from nova import objects
from oslo_log import log as logging

from cyborg_nova.policy import reconcile as policy

LOG = logging.getLogger(__name__)

UNHEALTHY_ACTION = 'accelerator_unhealthy'
RECOVERED_ACTION = 'accelerator_recovered'
EVENT_PREFIX = 'accelerator_'


def event_name(address):
    return EVENT_PREFIX + address


class HealthReport(object):
    """Health changes of one host's devices, reported once each."""

    def __init__(self, hostname):
        self.hostname = hostname
        self._state = None      # {address: reason}; None before first look

    def update(self, devices, guests):
        """Report what changed since the last call.

        *devices* are the devices discovered now, *guests* ``{instance
        uuid: [address]}`` what the libvirt domains hold.  Returns the
        :class:`~cyborg_nova.policy.reconcile.Transition` s reported.
        """
        holder = {}
        for uuid, addresses in guests.items():
            for address in addresses:
                holder[address] = uuid
        current = {d.address: ('' if d.healthy else
                               d.health.reason or 'reported unhealthy by '
                               'its driver %s' % d.driver)
                   for d in devices}
        context = None
        previous = self._state
        if previous is None:
            # First look in this process: what was last reported for the
            # devices guests hold is in their instance actions.
            context = nova_context.get_admin_context()
            previous = {}
            for address, uuid in holder.items():
                previous[address] = self._last_reported(context, uuid,
                                                        address)
        transitions, self._state = policy.health_transitions(previous,
                                                             current)
        by_address = {d.address: d for d in devices}
        for change in transitions:
            context = context or nova_context.get_admin_context()
            self._report(context, change, by_address.get(change.address),
                         holder.get(change.address))
        return transitions

    # -- reporting ---------------------------------------------------------

    def _report(self, context, change, device, server):
        what = _describe(change.address, device)
        if not change.healthy:
            if server:
                LOG.warning(
                    'Server %s uses %s, which turned unhealthy: %s. The '
                    'device is reserved in Placement and given to no new '
                    'server; the server keeps it and stays as it is: its '
                    'owner should cold migrate or resize it to move to a '
                    'healthy device (the device is reset when the server '
                    'releases it)', server, what, change.reason)
                self._record(context, server, UNHEALTHY_ACTION,
                             change.address,
                             '%s turned unhealthy on host %s: %s; the '
                             'server keeps it: cold migrate or resize the '
                             'server to move it to a healthy device' % (
                                 what, self.hostname, change.reason))
            else:
                LOG.warning('%s turned unhealthy: %s. It is reserved in '
                            'Placement and given to no new server', what,
                            change.reason)
            return
        LOG.info('%s is healthy again (it was: %s); it is given to new '
                 'servers again%s', what, change.reason,
                 ' (server %s holds it)' % server if server else '')
        if server:
            self._record(context, server, RECOVERED_ACTION, change.address,
                         None)

    def _record(self, context, instance_uuid, action, address, failure):
        """An instance action with one event; *failure* (a message) makes
        the event's result Error with the message as its details."""
        event = event_name(address)
        try:
            objects.InstanceAction.action_start(
                context, instance_uuid, action, want_result=False)
            objects.InstanceActionEvent.event_start(
                context, instance_uuid, event, want_result=False,
                host=self.hostname)
            if failure:
                objects.InstanceActionEvent.event_finish_with_failure(
                    context, instance_uuid, event, exc_val=failure,
                    exc_tb=failure)
            else:
                objects.InstanceActionEvent.event_finish(
                    context, instance_uuid, event, want_result=False)
            objects.InstanceAction.action_finish(
                context, instance_uuid, want_result=False)
        except Exception as exc:   # a report never breaks the update
            LOG.warning('Could not record the %s action of accelerator %s '
                        'on server %s: %s', action, address, instance_uuid,
                        exc)

    @staticmethod
    def _last_reported(context, instance_uuid, address):
        """The unhealthy reason last recorded for *address* on the server
        (``''`` when none is, or it recovered since)."""
        event = event_name(address)
        try:
            actions = objects.InstanceActionList.get_by_instance_uuid(
                context, instance_uuid)
            for action in actions:            # newest first
                if action.action not in (UNHEALTHY_ACTION,
                                         RECOVERED_ACTION):
                    continue
                events = objects.InstanceActionEventList.get_by_action(
                    context, action.id)
                for ev in events:
                    if ev.event == event:
                        if action.action == RECOVERED_ACTION:
                            return ''
                        return ev.details or 'reported unhealthy'
        except Exception as exc:
            LOG.debug('Could not read the actions of server %s: %s',
                      instance_uuid, exc)
        return ''


def _describe(address, device):
    if device is None:
        return 'accelerator %s' % address
    return 'accelerator %s (%s %s:%s%s)' % (
        address, device.resource_class, device.vendor_id, device.product_id,
        ', %s' % device.name if device.name else '')


def reporter_of(driver, hostname=None):
    """The driver's :class:`HealthReport`, made on first use."""
    report = getattr(driver, '_cyborg_nova_health_report', None)
    if report is None:
        report = HealthReport(hostname or driver._host.get_hostname())
        driver._cyborg_nova_health_report = report
    return report
