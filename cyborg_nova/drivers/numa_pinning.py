"""The NUMA tuning driver: places a guest's vCPUs and memory on the NUMA
nodes of its devices.

:meth:`NumaPinningDriver.tune` only decides (through the pure
:mod:`cyborg_nova.policy.numa_fit`); it changes nothing on the host.  The
libvirt adapter turns the :class:`~cyborg_nova.policy.numa_fit.NumaPlacement`
into the guest's XML: ``<cputune>`` (``<vcpupin>`` per ``pinning`` entry for
dedicated CPUs, otherwise the ``cpuset`` every vCPU may float over) and
``<numatune><memory mode="strict" nodeset="..."/>`` for ``memory_nodes``.
An unconstrained placement (``preferred`` without room, ``none``, no
devices) leaves the XML as Nova built it.
"""

from collections import abc

from cyborg_nova.drivers import base
from cyborg_nova.policy import numa_fit


class NumaPinningDriver(base.TuningDriver):

    name = 'numa_pinning'

    def tune(self, request, host_topology):
        """Place the guest of *request* on *host_topology*.

        :param request: a :class:`~cyborg_nova.policy.numa_fit.GuestRequest`;
            its ``policy`` defaults to ``[accelerator] default_numa_policy``.
        :param host_topology: ``{node: NumaCell}``, or Nova's host
            ``NUMATopology`` object (see :func:`cells_from_nova`).
        :returns: a :class:`~cyborg_nova.policy.numa_fit.NumaPlacement`.
        :raises NumaFitError: the policy is ``required`` and the guest does
            not fit next to its devices.
        """
        cells = (host_topology if isinstance(host_topology, abc.Mapping)
                 else cells_from_nova(host_topology))
        return numa_fit.place(cells, request.devices, request.vcpus,
                              request.memory_mb, dedicated=request.dedicated,
                              policy=request.policy or self.default_policy)

    @property
    def default_policy(self):
        conf = self.context.conf
        if conf is None:
            return numa_fit.PREFERRED
        return conf.accelerator.default_numa_policy


def cells_from_nova(numa_topology):
    """``{node: NumaCell}`` from Nova's host ``NUMATopology`` object (read
    by attribute only, so this module imports nothing from Nova).

    Shared-CPU guests float on a cell's ``cpuset`` (its share of
    ``cpu_shared_set``); dedicated CPUs come from ``pcpuset`` minus
    ``pinned_cpus``; free memory is ``memory - memory_usage`` as Nova
    accounts it.
    """
    cells = {}
    for cell in numa_topology.cells:
        cells[cell.id] = numa_fit.NumaCell(
            cpus=cell.cpuset,
            free_cpus=set(cell.pcpuset) - set(cell.pinned_cpus or ()),
            free_memory_mb=max(0, cell.memory - cell.memory_usage),
            siblings=cell.siblings or ())
    return cells
