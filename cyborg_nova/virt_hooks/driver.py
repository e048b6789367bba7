"""The compute driver: Nova's libvirt driver with accelerators.

Operators enable it with
``compute_driver = cyborg_nova.AcceleratedLibvirtDriver``; Nova imports
``nova.virt.cyborg_nova.AcceleratedLibvirtDriver``, the shim module that
re-exports this class.  What it adds to Nova's libvirt driver:

* ``update_provider_tree``: one child provider per locality group of
  assignable devices (see :mod:`cyborg_nova.policy.inventory`), with
  standard resource classes and traits; unhealthy devices reserved;
* ``get_available_resource``: a load and health summary in ``stats`` for
  the scheduler (:mod:`cyborg_nova.policy.host_stats`);
* ``_get_host_numa_topology``: NUMA markers so Nova's own claim puts a
  dedicated-CPU guest on its devices' node
  (:mod:`cyborg_nova.policy.numa_affinity`);
* ``spawn``: picks the devices Placement allocated on this host;
* ``_get_guest_config``: puts them in the guest and, for a shared-CPU
  guest, its vCPUs and memory on their NUMA node.  Every path that builds
  guest XML goes through it (spawn, hard reboot, resume on host boot,
  rebuild, finish_migration, unshelve);
* ``cleanup``: resets the devices a deleted guest held.
"""

import copy

from nova import conf as nova_conf
from nova import context as nova_context
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from cyborg_nova import conf as cn_conf
from cyborg_nova import errors
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import numa_fit
from cyborg_nova.policy import request as request_mod
from cyborg_nova.virt_hooks import guest_devices
from cyborg_nova.virt_hooks import host_devices

CONF = nova_conf.CONF
LOG = logging.getLogger(__name__)

# Register at import time as well, so that the options exist before Nova's
# service parses its config files (the driver is imported before it is
# instantiated).  register_opts is idempotent for the same option objects.
cn_conf.register_opts(CONF)

#: Where an instance's devices are recorded (system_metadata), so that every
#: later rebuild of its XML (hard reboot, host reboot, rebuild) keeps them.
DEVICES_KEY = 'cyborg_nova_devices'


class AcceleratedLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver, extended with accelerator support."""

    def __init__(self, virtapi, read_only=False):
        cn_conf.register_opts(CONF)
        super().__init__(virtapi, read_only=read_only)
        self.accelerators = host_devices.HostDevices(CONF)

    # -- host ------------------------------------------------------------

    def init_host(self, host):
        super().init_host(host)
        result = self.accelerators.refresh()
        LOG.info('Accelerators on this host: %d device(s), %d assignable; '
                 'drivers: %s%s',
                 len(result.devices),
                 sum(1 for d in result.devices if d.assignable),
                 ', '.join(sorted(result.drivers)) or 'none',
                 ''.join('; %s skipped (%s)' % kv
                         for kv in sorted(result.failures.items())))
        for dev in result.devices:
            if not dev.assignable:
                LOG.info('Accelerator %s is not offered: %s', dev.address,
                         '; '.join(dev.reasons))

    def _guest_devices(self):
        """``{instance uuid: [pci address]}`` of every defined guest."""
        held = {}
        try:
            guests = self._host.list_guests(only_running=False)
        except Exception as exc:
            LOG.warning('Could not list guests to see which accelerators '
                        'they hold: %s', exc)
            return held
        for guest in guests:
            try:
                addrs = guest_devices.pci_addresses_in(guest)
            except Exception as exc:   # a guest vanishing while we look
                LOG.debug('Could not read devices of guest %s: %s',
                          guest.uuid, exc)
                continue
            if addrs:
                held[guest.uuid] = addrs
        return held

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        self.accelerators.refresh()
        groups = self.accelerators.groups(self._guest_devices())
        stats = dict(resources.get('stats') or {})
        stats.update(host_stats.encode(groups))
        resources['stats'] = stats
        return resources

    def update_provider_tree(self, provider_tree, nodename,
                             allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        self._update_provider_tree_for_accelerators(provider_tree, nodename)
        # Nova's driver keeps a copy of the tree for spawn; it must see our
        # providers too.
        self.provider_tree = copy.deepcopy(provider_tree)

    def _update_provider_tree_for_accelerators(self, provider_tree,
                                               nodename):
        root = provider_tree.data(nodename)
        groups = self.accelerators.groups(self._guest_devices())
        wanted = set()
        for group in groups:
            name = group.provider_name(nodename)
            uuid = group.provider_uuid(root.uuid)
            wanted.add(uuid)
            if not provider_tree.exists(uuid):
                provider_tree.new_child(name, nodename, uuid=uuid)
            provider_tree.update_inventory(
                uuid, {group.key.resource_class:
                       inventory.inventory_record(group)})
            provider_tree.update_traits(uuid, sorted(group.traits))
            LOG.debug('Accelerator provider %s: %d device(s) %s, %d '
                      'reserved, traits %s', name, group.total,
                      ','.join(group.devices), group.reserved,
                      ','.join(sorted(group.traits)))
        marker = inventory.classify.custom_name('ACCEL_GROUP')
        for child in provider_tree.get_provider_uuids_in_tree(nodename):
            data = provider_tree.data(child)
            if (child not in wanted and data.parent_uuid == root.uuid
                    and marker in data.traits):
                LOG.info('Accelerator provider %s has no device any more; '
                         'removing it', data.name)
                provider_tree.remove(child)

    def _get_host_numa_topology(self):
        topology = super()._get_host_numa_topology()
        if topology is None:
            return topology
        for cell in topology.cells:
            meta = cell.network_metadata if 'network_metadata' in cell \
                else objects.NetworkMetadata(physnets=set(), tunneled=False)
            cell.network_metadata = objects.NetworkMetadata(
                physnets=set(meta.physnets) | {numa_affinity.marker(cell.id)},
                tunneled=meta.tunneled)
        return topology

    # -- guests ----------------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        root_uuid = self._root_provider_uuid()
        devices = self.accelerators.claim(
            instance.uuid, allocations, root_uuid, self._guest_devices())
        if devices:
            instance.system_metadata[DEVICES_KEY] = ','.join(
                d.address for d in devices)
            LOG.info('Accelerators for this instance: %s',
                     ', '.join('%s (NUMA node %s)' % (d.address, d.numa_node)
                               for d in devices), instance=instance)
        try:
            super().spawn(context, instance, image_meta, injected_files,
                          admin_password, allocations,
                          network_info=network_info,
                          block_device_info=block_device_info,
                          power_on=power_on, accel_info=accel_info)
        except Exception:
            instance.system_metadata.pop(DEVICES_KEY, None)
            raise
        finally:
            self.accelerators.settle(instance.uuid)

    def _root_provider_uuid(self):
        nodename = self._host.get_hostname()
        tree = getattr(self, 'provider_tree', None)
        if tree is not None:
            try:
                return tree.data(nodename).uuid
            except ValueError:
                pass
        return objects.ComputeNode.get_by_nodename(
            nova_context.get_admin_context(), nodename).uuid

    def instance_devices(self, instance):
        """The devices an instance holds on this host, as Device objects."""
        addresses = self.accelerators.pending(instance.uuid)
        if not addresses:
            recorded = instance.system_metadata.get(DEVICES_KEY, '')
            addresses = [a for a in recorded.split(',') if a]
        known = self.accelerators.by_address()
        missing = [a for a in addresses if a not in known]
        if missing:
            raise errors.DeviceNotFound(
                'instance %s holds accelerator(s) %s that this host no '
                'longer has; check the host (cyborg-nova discover) before '
                'restarting the instance' % (instance.uuid,
                                             ', '.join(missing)))
        return [known[a] for a in addresses]

    def _get_guest_config(self, instance, *args, **kwargs):
        cfg = super()._get_guest_config(instance, *args, **kwargs)
        devices = self.instance_devices(instance)
        if not devices:
            return cfg
        present = set(guest_devices.pci_addresses_in_config(cfg))
        for dev in devices:
            if dev.address in present:
                continue
            driver = self.accelerators.driver_for(dev)
            cfg.add_device(guest_devices.hostdev_config(
                driver.attach(dev, instance.uuid)))
        self._place_near_devices(instance, cfg, devices)
        return cfg

    def _place_near_devices(self, instance, cfg, devices):
        """vCPUs and memory of a shared-CPU guest on its devices' node.

        Guests with dedicated CPUs were already placed there by Nova's own
        claim (see :mod:`cyborg_nova.policy.numa_affinity`); their XML is
        Nova's.  Here we only report whether they are aligned.
        """
        req = request_mod.parse_extra_specs(
            instance.flavor.extra_specs,
            default_numa_policy=CONF.accelerator.default_numa_policy)
        nodes = {d.numa_node for d in devices}
        if instance.numa_topology is not None:
            guest_nodes = {c.id for c in instance.numa_topology.cells}
            LOG.info('Guest with its own NUMA topology on host node(s) %s; '
                     'its accelerators are on node(s) %s: %s', sorted(
                         guest_nodes), sorted(n for n in nodes
                                              if n is not None),
                     'aligned' if nodes <= guest_nodes else 'NOT aligned',
                     instance=instance)
            return
        placement = numa_fit.place(
            self._numa_cells_for_shared_guests(),
            {d.address: d.numa_node for d in devices},
            vcpus=instance.flavor.vcpus,
            memory_mb=instance.flavor.memory_mb,
            dedicated=False, policy=req.numa_policy)
        if placement.constrained:
            cfg.cpuset = set(placement.cpuset)
            cfg.numatune = guest_devices.numatune_config(
                placement.memory_nodes)
        LOG.info('NUMA placement: %s', placement.explanation,
                 instance=instance)

    def _numa_cells_for_shared_guests(self):
        """``{node: NumaCell}``: the CPUs a shared-CPU guest may float on
        and the node's memory (Nova does not account shared guests per
        node, so the whole node's memory is what there is to know)."""
        topology = self._get_host_numa_topology()
        if topology is None:
            return {}
        # A cell's cpuset is already its part of cpu_shared_set.
        return {cell.id: numa_fit.NumaCell(cpus=cell.cpuset,
                                           free_memory_mb=cell.memory)
                for cell in topology.cells}

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        devices = []
        try:
            devices = self.instance_devices(instance)
        except errors.CyborgNovaError as exc:
            LOG.warning('%s', exc, instance=instance)
        super().cleanup(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        migrate_data=migrate_data,
                        destroy_vifs=destroy_vifs,
                        destroy_secrets=destroy_secrets)
        self.accelerators.release(instance.uuid)
        for dev in devices:
            driver = self.accelerators.driver_for(dev)
            try:
                driver.detach(dev, instance.uuid)
                driver.uninstall(dev)
            except Exception as exc:
                LOG.error('Accelerator %s could not be reset after the '
                          'instance released it: %s; it is reported '
                          'unhealthy until it is reset', dev.address, exc,
                          instance=instance)
