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
* ``spawn`` (boot, rebuild, unshelve, evacuate) and ``finish_migration``
  (resize, cold migration): pick the devices Placement allocated on this
  host and record them on the instance, one record per compute node
  (:mod:`cyborg_nova.virt_hooks.instance_record`);
* ``_get_guest_config``: puts the recorded devices in the guest and, for a
  shared-CPU guest, its vCPUs and memory on their NUMA node.  Every path
  that builds guest XML goes through it (spawn, hard reboot, start, resume
  on host boot, rebuild, finish_migration, revert, unshelve);
* ``cleanup``, ``confirm_migration``: reset and release the devices a
  guest gave up; ``finish_revert_migration`` gives a reverted guest its old
  devices back;
* ``check_can_live_migrate_source``: refuses to live-migrate a server
  holding passthrough devices.
"""

import collections
import contextlib
import copy
import threading

from nova.compute import task_states
from nova.compute import vm_states
from nova import conf as nova_conf
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects
from nova.virt.libvirt import driver as libvirt_driver
from oslo_log import log as logging

from cyborg_nova import conf as cn_conf
from cyborg_nova import deployment_check
from cyborg_nova import errors
from cyborg_nova.policy import host_stats
from cyborg_nova.policy import inventory
from cyborg_nova.policy import numa_affinity
from cyborg_nova.policy import numa_fit
from cyborg_nova.policy import request as request_mod
from cyborg_nova.virt_hooks import guest_devices
from cyborg_nova.virt_hooks import health_report
from cyborg_nova.virt_hooks import host_devices
from cyborg_nova.virt_hooks import instance_record
from cyborg_nova.virt_hooks import reconcile

CONF = nova_conf.CONF
LOG = logging.getLogger(__name__)

# Register at import time as well, so that the options exist before Nova's
# service parses its config files (the driver is imported before it is
# instantiated).  register_opts is idempotent for the same option objects.
cn_conf.register_opts(CONF)


class AcceleratedLibvirtDriver(libvirt_driver.LibvirtDriver):
    """Nova's libvirt driver, extended with accelerator support."""

    def __init__(self, virtapi, read_only=False):
        cn_conf.register_opts(CONF)
        super().__init__(virtapi, read_only=read_only)
        self.accelerators = host_devices.HostDevices(CONF)
        self._local = threading.local()
        self._reservations_loaded = False

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
        self._log_topology_limits(result.devices)
        deployment_check.check_and_log(
            'compute', lambda: deployment_check.compute_findings(
                CONF, result.devices))
        # What guests hold, what Placement allocated and what the records
        # say, compared once at start-up; never stops the start.
        reconcile.run(self, host, self._host.get_hostname())

    @staticmethod
    def _log_topology_limits(devices):
        """Tell the operator what one request group can get here, and when
        the NVLink part of the topology is unknown."""
        groups = inventory.locality_groups(devices)
        widest = max((len(g.devices) for g in groups
                      if g.capacity is None), default=0)
        if widest:
            LOG.info('Largest accelerator group on this host: %d device(s). '
                     'A flavor asking more in one request group gets no '
                     'candidate here: use numbered groups (resources1:PGPU=4,'
                     ' resources2:PGPU=4, group_policy=none)', widest)
        blind = [d.address for d in devices
                 if d.vendor_id == '10de' and d.kernel_driver == 'vfio-pci'
                 and d.assignable and 'nvlink_island' not in d.capabilities]
        if len(blind) > 1:
            LOG.info('NVLink topology unknown for %s (NVML cannot see GPUs '
                     'bound to vfio-pci): multi-GPU requests are placed by '
                     'PCIe topology only', ', '.join(blind))

    def _guest_devices(self):
        """``{instance uuid: [pci address]}`` of every defined guest; a
        guest's mdevs count as the address of their vGPU parent, once per
        mdev."""
        held = {}
        try:
            guests = self._host.list_guests(only_running=False)
        except Exception as exc:
            LOG.warning('Could not list guests to see which accelerators '
                        'they hold: %s', exc)
            return held
        for guest in guests:
            try:
                addrs = self.accelerators.addresses_in(guest)
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
        guests = self._guest_devices()
        # Health changes are reported once each; the inventory update that
        # follows reserves unhealthy devices in Placement.
        health_report.reporter_of(self, nodename).update(
            self.accelerators.devices, guests)
        groups = self.accelerators.groups(guests)
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
    #
    # Which devices an instance holds on this node is its record
    # (instance_record: one per compute node, in system_metadata).  The
    # record always names exactly what Placement allocated to the instance
    # on this node: spawn and finish_migration write it from the
    # allocations they are given, cleanup, confirm_migration and the
    # revert's cleanup forget it, and every path that rebuilds the guest
    # XML (_get_guest_config) reads it.  All of this runs under the
    # per-instance lock shared with ``cyborg-nova attach/detach``.

    def _nodename(self):
        return self._host.get_hostname()

    def _thread_set(self, name):
        """A per-greenthread (per-thread) set of instance uuids."""
        value = getattr(self._local, name, None)
        if value is None:
            value = set()
            setattr(self._local, name, value)
        return value

    @contextlib.contextmanager
    def _instance_lock(self, instance):
        """:func:`instance_record.instance_lock`, taken once per thread:
        a hard reboot runs cleanup inside it, and the lock is not
        reentrant.  Once taken, the instance's record is read again
        (:meth:`_catch_up_record`)."""
        held = self._thread_set('locked')
        if instance.uuid in held:
            yield
            return
        with instance_record.instance_lock(instance.uuid):
            self._catch_up_record(instance)
            held.add(instance.uuid)
            try:
                yield
            finally:
                held.discard(instance.uuid)

    def _log_devices(self, instance, devices, why):
        if devices:
            LOG.info('Accelerators for this instance (%s): %s', why,
                     ', '.join('%s (NUMA node %s)' % (d.address, d.numa_node)
                               for d in devices), instance=instance)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        # A new server, a rebuild (its record names the devices it keeps),
        # an unshelve or an evacuation (devices from the allocations this
        # host was given).
        node = self._nodename()
        with self._instance_lock(instance):
            self._load_resize_reservations()
            previous = instance_record.devices_on(instance, node)
            devices = self.accelerators.claim(
                instance.uuid, self._allocations_here(allocations, node),
                self._root_provider_uuid(), self._guest_devices,
                keep=previous, link_policy=self._link_policy(instance))
            self._warn_left_behind(instance, node)
            instance_record.record(instance, node,
                                   [d.address for d in devices])
            self._log_devices(instance, devices, 'spawn')
            try:
                super().spawn(context, instance, image_meta, injected_files,
                              admin_password, allocations,
                              network_info=network_info,
                              block_device_info=block_device_info,
                              power_on=power_on, accel_info=accel_info)
            except Exception:
                instance_record.record(instance, node, previous)
                self._reset(instance, [d for d in devices
                                       if d.address not in previous])
                raise
            finally:
                self.accelerators.settle(instance.uuid)

    def _warn_left_behind(self, instance, node):
        """An evacuation brings the flavor's devices only: say so when the
        server held more on the host it left (added with attach)."""
        try:
            wanted = sum(self._request(instance).resources.values())
        except errors.InvalidRequest:
            return
        for other in instance_record.nodes_of(instance):
            held = instance_record.devices_on(instance, other)
            if other != node and len(held) > wanted:
                LOG.warning('The server held %d accelerator(s) on %s (%s), '
                            '%d beyond its flavor (added with cyborg-nova '
                            'attach); only the flavor\'s come with it to '
                            'this host: attach the others again here',
                            len(held), other, ', '.join(held),
                            len(held) - wanted, instance=instance)

    def _allocations_here(self, allocations, nodename):
        """The part of *allocations* made against this node's providers.

        An evacuation's allocations also hold the source host's providers
        until that host comes back; those are not ours to claim.
        """
        tree = getattr(self, 'provider_tree', None)
        if not allocations or tree is None:
            return allocations
        try:
            ours = set(tree.get_provider_uuids_in_tree(nodename))
        except ValueError:
            return allocations
        return {rp: alloc for rp, alloc in allocations.items()
                if rp in ours}

    def _root_provider_uuid(self):
        nodename = self._nodename()
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
            addresses = instance_record.devices_on(instance,
                                                   self._nodename())
        known = self.accelerators.by_address()
        missing = [a for a in addresses if a not in known]
        if missing:
            raise errors.DeviceNotFound(
                'instance %s holds accelerator(s) %s that this host no '
                'longer has; check the host (cyborg-nova discover) before '
                'restarting the instance' % (instance.uuid,
                                             ', '.join(missing)))
        return [known[a] for a in addresses]

    def _known_devices(self, instance, addresses):
        """Device objects for *addresses*, leaving out (with a warning)
        those the host does not have any more."""
        known = self.accelerators.by_address()
        missing = [a for a in addresses if a not in known]
        if missing:
            LOG.warning('Accelerator(s) %s of this instance are not on this '
                        'host any more; they cannot be reset', ', '.join(
                            missing), instance=instance)
        return [known[a] for a in addresses if a in known]

    def _get_guest_config(self, instance, *args, **kwargs):
        cfg = super()._get_guest_config(instance, *args, **kwargs)
        devices = self.instance_devices(instance)
        if not devices:
            return cfg
        present = set(guest_devices.pci_addresses_in_config(cfg))
        mdevs = set(guest_devices.mdev_uuids_in_config(cfg))
        index = collections.Counter()
        for dev in devices:
            driver = self.accelerators.driver_for(dev)
            if inventory.is_shared(dev):
                # A vGPU: the instance's index-th mdev on this parent,
                # reused on every rebuild of the XML (Nova's hard reboot
                # may already have put it in, from the old guest).
                hostdev = driver.ensure(dev, instance.uuid,
                                        index[dev.address])
                index[dev.address] += 1
                if hostdev.uuid not in mdevs:
                    cfg.add_device(guest_devices.hostdev_config(hostdev))
                continue
            if dev.address in present:
                continue
            cfg.add_device(guest_devices.hostdev_config(
                driver.attach(dev, instance.uuid)))
        self._place_near_devices(instance, cfg, devices)
        return cfg

    def _request(self, instance):
        """The accelerator request of the instance's flavor."""
        return request_mod.parse_extra_specs(
            instance.flavor.extra_specs,
            default_numa_policy=CONF.accelerator.default_numa_policy)

    def _link_policy(self, instance):
        return self._request(instance).link_policy

    def _place_near_devices(self, instance, cfg, devices):
        """vCPUs and memory of a shared-CPU guest on its devices' node,
        as the enabled tuning drivers (``numa_pinning``) place them.

        Guests with dedicated CPUs were already placed there by Nova's own
        claim (see :mod:`cyborg_nova.policy.numa_affinity`); their XML is
        Nova's.  Here we only report whether they are aligned.
        """
        req = self._request(instance)
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
        tuners = self.accelerators.tuning_drivers()
        if not tuners:
            LOG.info('No tuning driver is enabled ([accelerator] '
                     'enabled_drivers has no numa_pinning): the guest is not '
                     'placed near its accelerators', instance=instance)
            return
        guest = numa_fit.GuestRequest(
            vcpus=instance.flavor.vcpus, memory_mb=instance.flavor.memory_mb,
            dedicated=False, policy=req.numa_policy,
            devices={d.address: d.numa_node for d in devices})
        cells = self._numa_cells_for_shared_guests()
        for tuner in tuners:
            placement = tuner.tune(guest, cells)
            if placement.constrained:
                cfg.cpuset = set(placement.cpuset)
                cfg.numatune = guest_devices.numatune_config(
                    placement.memory_nodes)
            LOG.info('NUMA placement (%s): %s', tuner.name,
                     placement.explanation, instance=instance)

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

    def _hard_reboot(self, context, instance, *args, **kwargs):
        # Hard reboot, start (power_on) and resume on host boot: the domain
        # is destroyed (through cleanup) and defined again from the record
        # (as the database has it: see _catch_up_record); the instance
        # keeps its devices throughout.
        with self._instance_lock(instance):
            addresses = instance_record.devices_on(instance,
                                                   self._nodename())
            self.accelerators.hold(instance.uuid, addresses)
            recreating = self._thread_set('recreating')
            recreating.add(instance.uuid)
            try:
                return super()._hard_reboot(context, instance, *args,
                                            **kwargs)
            finally:
                recreating.discard(instance.uuid)
                self.accelerators.settle(instance.uuid)

    def _catch_up_record(self, instance):
        """Nova loaded *instance* before it waited for the instance lock;
        a ``cyborg-nova attach`` or ``detach`` that held the lock meanwhile
        changed the record in the database: use that one, or the guest's
        XML would be rebuilt without the device just attached (or with the
        one just detached), and a delete would not reset it."""
        node = self._nodename()
        try:
            fresh = objects.Instance.get_by_uuid(
                nova_context.get_admin_context(), instance.uuid,
                expected_attrs=['system_metadata'])
        except nova_exception.InstanceNotFound:
            return
        before = instance_record.devices_on(instance, node)
        if instance_record.catch_up(instance, node, fresh.system_metadata):
            LOG.info('The accelerator record changed since this operation '
                     'loaded the instance (cyborg-nova attach or detach ran '
                     'meanwhile): %s, not %s',
                     ', '.join(instance_record.devices_on(instance, node))
                     or 'none', ', '.join(before) or 'none',
                     instance=instance)

    def cleanup(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, migrate_data=None, destroy_vifs=True,
                destroy_secrets=True):
        node = self._nodename()
        with self._instance_lock(instance):
            # A hard reboot or a rebuild destroys the guest to define it
            # again on this host: it keeps its devices.  Anything else
            # (delete, shelve offload, the destination of a reverted
            # resize, a guest evacuated while this host was down) ends the
            # instance's life here: its devices are reset and released.
            recreated = (instance.uuid in self._thread_set('recreating') or
                         instance.task_state == task_states.REBUILDING)
            addresses = instance_record.devices_on(instance, node)
            devices = self._known_devices(instance, addresses)
            super().cleanup(context, instance, network_info,
                            block_device_info=block_device_info,
                            destroy_disks=destroy_disks,
                            migrate_data=migrate_data,
                            destroy_vifs=destroy_vifs,
                            destroy_secrets=destroy_secrets)
            if recreated:
                self.accelerators.hold(instance.uuid, addresses)
                return
            if instance.task_state == task_states.SHELVING_OFFLOADING:
                attached = self._attached_beyond_flavor(instance)
                if attached:
                    LOG.warning('Shelve-offload releases accelerators %s, '
                                'added to this server with cyborg-nova '
                                'attach: its flavor does not ask for them, '
                                'so unshelve does not bring them back; '
                                'attach them again after unshelve',
                                ', '.join(attached), instance=instance)
            self.accelerators.release(instance.uuid)
            instance_record.record(instance, node, [])
            # The source devices of a resize to this same host are not the
            # reverted destination's: they go back to the guest.
            kept = set(instance_record.stashed(instance, node) or ())
            self._reset(instance, [d for d in devices
                                   if d.address not in kept])
            if addresses and instance.node and instance.node != node:
                # Evacuated while this host was down: no Nova code saves
                # the instance after this cleanup.
                self._save_record(instance)

    def _save_record(self, instance):
        try:
            instance.save()
        except Exception as exc:
            LOG.warning('Could not save the accelerator record of the '
                        'instance: %s', exc, instance=instance)

    def _reset(self, instance, devices):
        """Reset devices a guest released, before anyone else gets them."""
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

    # -- moves -----------------------------------------------------------
    #
    # Resize and cold migration.  The source node's record stays until the
    # move is confirmed (confirm_migration, on the source) or reverted (the
    # destination's cleanup, then finish_revert_migration on the source).
    # On another host the source guest stays defined, powered off, so its
    # devices stay held, as Placement holds them for the migration.  On the
    # same host the new guest replaces the old one: the old devices are
    # stashed on the instance and reserved on the host until then.

    @staticmethod
    def _same_node(migration):
        if migration.obj_attr_is_set('source_node') and \
                migration.obj_attr_is_set('dest_node') and \
                migration.source_node and migration.dest_node:
            return migration.source_node == migration.dest_node
        return migration.source_compute == migration.dest_compute

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        # Devices added with cyborg-nova attach are in the server's
        # allocation here but not in its flavor, so the destination would
        # not get them: refuse before anything moves, as Nova refuses a
        # disk it cannot resize (the server stays as it was).
        extra = self._attached_beyond_flavor(instance)
        if extra:
            raise nova_exception.InstanceFaultRollback(
                nova_exception.ResizeError(reason=(
                    'the server holds accelerators added with cyborg-nova '
                    'attach (%s), which its flavor does not ask for and '
                    'which would not follow it; detach them first '
                    '("cyborg-nova detach %s ADDRESS"), or resize it to a '
                    'flavor that asks for them' % (
                        ', '.join(extra), instance.uuid))))
        return super().migrate_disk_and_power_off(
            context, instance, dest, flavor, network_info,
            block_device_info=block_device_info, timeout=timeout,
            retry_interval=retry_interval)

    def _attached_beyond_flavor(self, instance):
        """Addresses of the instance's devices here, of the resource
        classes it holds more of than its flavor asks."""
        known = self.accelerators.by_address()
        mine = [known[a] for a in instance_record.devices_on(
            instance, self._nodename()) if a in known]
        try:
            counts = self._request(instance).resources
        except errors.InvalidRequest:
            counts = {}
        extra = request_mod.beyond_flavor([d.resource_class for d in mine],
                                          counts)
        return sorted({d.address for d in mine
                       if d.resource_class in extra})

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        node = self._nodename()
        with self._instance_lock(instance):
            self._load_resize_reservations()
            same_node = self._same_node(migration)
            previous = instance_record.devices_on(instance, node)
            if same_node:
                instance_record.stash(instance, node, previous)
                self.accelerators.reserve(instance.uuid, previous)
            else:
                previous = []
            try:
                devices = self.accelerators.claim(
                    instance.uuid, self._allocations_here(allocations, node),
                    self._root_provider_uuid(), self._guest_devices,
                    link_policy=self._link_policy(instance))
            except Exception:
                self._undo_stash(instance, node, same_node)
                raise
            instance_record.record(instance, node,
                                   [d.address for d in devices])
            self._log_devices(instance, devices, 'resize or migration')
            try:
                super().finish_migration(
                    context, migration, instance, disk_info, network_info,
                    image_meta, resize_instance, allocations,
                    block_device_info=block_device_info, power_on=power_on,
                    share_info=share_info)
            except Exception:
                self._undo_stash(instance, node, same_node)
                instance_record.record(instance, node, previous)
                self._reset(instance, [d for d in devices
                                       if d.address not in previous])
                raise
            finally:
                self.accelerators.settle(instance.uuid)

    def _load_resize_reservations(self):
        """Once after nova-compute starts, before its first claim: reserve
        again the source devices of resizes to this same host that wait
        for their confirmation (the reservation is in memory, the stash on
        the instance)."""
        if self._reservations_loaded:
            return
        node = self._nodename()
        try:
            resized = objects.InstanceList.get_by_filters(
                nova_context.get_admin_context(),
                {'vm_state': vm_states.RESIZED, 'deleted': False},
                expected_attrs=['system_metadata'])
        except Exception as exc:
            LOG.warning('Could not look for resizes to this host awaiting '
                        'confirmation (%s); will try again at the next '
                        'claim', exc)
            return
        for inst in resized:
            stashed = instance_record.stashed(inst, node)
            if stashed and inst.node == node:
                LOG.info('Accelerator(s) %s stay reserved for the revert of '
                         'a resize on this host', ', '.join(stashed),
                         instance=inst)
                self.accelerators.reserve(inst.uuid, stashed)
        self._reservations_loaded = True

    def _undo_stash(self, instance, node, same_node):
        if same_node:
            instance_record.take_stash(instance, node)
            self.accelerators.unreserve(instance.uuid)

    def confirm_migration(self, context, migration, instance, network_info):
        # On the source host: its guest goes, and so do its devices.
        node = self._nodename()
        with self._instance_lock(instance):
            if self._same_node(migration):
                stashed = instance_record.take_stash(instance, node) or []
                current = set(instance_record.devices_on(instance, node))
                released = [a for a in stashed if a not in current]
                self.accelerators.unreserve(instance.uuid)
            else:
                released = instance_record.devices_on(instance, node)
                instance_record.record(instance, node, [])
            devices = self._known_devices(instance, released)
            super().confirm_migration(context, migration, instance,
                                      network_info)
            self._reset(instance, devices)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        # On the source host, after the destination's cleanup: the guest
        # gets back the devices of its old flavor.
        node = self._nodename()
        with self._instance_lock(instance):
            stashed = instance_record.take_stash(instance, node)
            if stashed is not None:
                instance_record.record(instance, node, stashed)
                self.accelerators.unreserve(instance.uuid)
            addresses = instance_record.devices_on(instance, node)
            self.accelerators.hold(instance.uuid, addresses)
            try:
                super().finish_revert_migration(
                    context, instance, network_info, migration,
                    block_device_info=block_device_info, power_on=power_on,
                    share_info=share_info)
            finally:
                self.accelerators.settle(instance.uuid)

    def check_can_live_migrate_source(self, context, instance,
                                      dest_check_data,
                                      block_device_info=None):
        # Passthrough devices cannot follow a running guest: refuse before
        # anything moves (the conductor then leaves the server where it is,
        # with its devices and allocations).
        addresses = instance_record.devices_on(instance, self._nodename())
        try:
            req = request_mod.parse_extra_specs(instance.flavor.extra_specs)
        except errors.CyborgNovaError:
            req = None
        if addresses or (req is not None and req.wants_devices):
            held = (('holds passthrough accelerator(s) %s on host %s' % (
                ', '.join(addresses), self._nodename())) if addresses else
                ('has a flavor asking for accelerators (%s)' % ', '.join(
                    '%s=%d' % kv for kv in sorted(req.resources.items()))))
            raise nova_exception.MigrationPreCheckError(
                reason='server %s %s, which cannot be live-migrated; '
                       'cold-migrate it (migrate) or resize it instead'
                       % (instance.uuid, held))
        return super().check_can_live_migrate_source(
            context, instance, dest_check_data,
            block_device_info=block_device_info)
