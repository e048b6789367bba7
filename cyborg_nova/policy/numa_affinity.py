"""How the scheduler tells Nova's own NUMA fitting where a guest's devices
are.

Nova fits a guest with dedicated CPUs onto host NUMA cells itself, at the
compute's claim (``hardware.numa_fit_instance_to_host``), so CPU accounting
stays Nova's.  That fitting already honours one kind of locality: the
``network_metadata`` of the claim's limits must be covered by the chosen
host cells' ``network_metadata``.  The compute driver marks every host cell
with a marker of its own node (:func:`marker`); the scheduler filter adds
the markers of the devices' nodes to the host's limits; Nova's claim then
places the guest on those nodes, and nowhere else.  The markers cannot
clash with real physnet names: they use a prefix no Neutron physnet has.
"""

MARKER_PREFIX = 'cyborg-nova-numa-node-'


def marker(node):
    return '%s%d' % (MARKER_PREFIX, node)


def is_marker(name):
    return name.startswith(MARKER_PREFIX)
