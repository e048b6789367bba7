"""A device that turns unhealthy is reserved in Placement, given to no new
server and reported on the server that holds it, once; recovery gives it
back.  A device that is not isolated, used by the host or not resettable
is never offered.  Real Nova API, scheduler, Placement and compute."""

import dataclasses
import os

import fixtures
from nova import context as nova_context
from nova import objects
from nova.tests.fixtures import libvirt as fakelibvirt

from cyborg_nova import device as device_mod
from cyborg_nova.drivers import fake
from cyborg_nova.tests.fixtures import hosts
from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.virt_hooks import instance_record
from cyborg_nova.virt_hooks import reconcile

XID79 = 'XID 79 (GPU has fallen off the bus) at 2026-11-26T10:00:00Z'
GPU1, GPU2, GPU3 = '0000:81:00.0', '0000:82:00.0', '0000:83:00.0'
PROVIDER = 'host1_PGPU_10de_2330_NUMA0'


class HealthTestBase(gpu_base.GPUTestBase):

    def _run_periodics(self):
        ctx = nova_context.get_admin_context()
        for compute in self.computes.values():
            compute.manager.update_available_resource(ctx)

    def restart_compute(self, hostname):
        """Nova's restart_compute_service, keeping the hypervisor state
        (it calls start_compute positionally, which our base's signature
        does not take)."""
        compute = self.computes.pop(hostname)
        self.compute_rp_uuids.pop(hostname)
        compute.stop()
        cell_name = self.host_mappings[compute.host].cell_mapping.name
        connection = compute.manager.driver._get_connection()
        self.start_compute(hostname, cell_name=cell_name,
                           connection=connection)
        return self.computes[hostname]

    def inventories(self, hostname):
        """``{provider name: inventories}`` of a host's tree."""
        rp_uuid = self.compute_rp_uuids[hostname]
        tree = self.placement.get(
            '/resource_providers?in_tree=%s' % rp_uuid,
            version='1.14').body['resource_providers']
        return {rp['name']: self.placement.get(
                    '/resource_providers/%s/inventories' % rp['uuid']
                ).body['inventories'] for rp in tree}

    def log_lines(self, text):
        return [line for line in self.stdlog.logger.output.splitlines()
                if text in line]


class TestAcceleratorHealth(HealthTestBase):

    # Nova's API answers event details from microversion 2.84.
    microversion = 'latest'

    def setUp(self):
        super().setUp()
        fake.FakeDriver.reset()
        self.addCleanup(fake.FakeDriver.reset)
        self.flags(enabled_drivers=['fake', 'numa_pinning'],
                   group='accelerator')

    def _set_health(self, address, health):
        fake.FakeDriver.DEVICES = [
            dataclasses.replace(d, health=health) if d.address == address
            else d for d in fake.FakeDriver.DEVICES]

    def _inventory(self, name):
        return self.inventories('host1')[name]['PGPU']

    def _health_actions(self, server):
        return [a for a in self.admin_api.get_instance_actions(server['id'])
                if a['action'].startswith('accelerator_')]

    def test_unhealthy_gpu_is_reserved_reported_once_and_recovers(self):
        fake.FakeDriver.DEVICES = [fake.make_device(a, numa_node=0)
                                   for a in (GPU1, GPU2, GPU3)]
        self.start_compute('host1', host_info=self.host_info())
        flavor = self.gpu_flavor(gpus=1)
        first = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual([GPU1],
                         self.hostdev_addresses(self.last_config(first)))
        self.assertEqual(0, self._inventory(PROVIDER)['reserved'])

        # A free GPU turns unhealthy: reserved at the next update, never
        # given to a new server, reported once (no server to name).
        self._set_health(GPU2, device_mod.Health.bad(XID79))
        self._run_periodics()
        self._run_periodics()
        self.assertEqual(1, self._inventory(PROVIDER)['reserved'])
        [warning] = self.log_lines('turned unhealthy')
        self.assertIn('accelerator %s' % GPU2, warning)
        self.assertIn(XID79, warning)
        second = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual([GPU3],
                         self.hostdev_addresses(self.last_config(second)))

        # The GPU a server uses turns unhealthy: the server is reported,
        # once, and left as it is; no new server gets that GPU.
        self._set_health(GPU1, device_mod.Health.bad(XID79))
        self._run_periodics()
        self._run_periodics()
        warnings = self.log_lines('which turned unhealthy')
        self.assertEqual(1, len(warnings), warnings)
        for part in (first['id'], GPU1, XID79):
            self.assertIn(part, warnings[0])
        [action] = self._health_actions(first)
        self.assertEqual('accelerator_unhealthy', action['action'])
        self.assertEqual('Error', action['message'])
        details = self.admin_api.get_instance_action_details(
            first['id'], action['request_id'])
        [event] = details['events']
        self.assertEqual('accelerator_' + GPU1, event['event'])
        self.assertEqual('Error', event['result'])
        self.assertIn(XID79, event['details'])
        self.assertEqual([], self._health_actions(second))
        self.assertEqual('ACTIVE', self.api.get_server(first['id'])['status'])
        self.assertEqual({first['id']: [GPU1], second['id']: [GPU3]},
                         self.driver_of('host1')._guest_devices())
        third = self._create_server(flavor_id=flavor, networks='none',
                                    expected_state='ERROR')
        self.assertIn('No valid host', third['fault']['message'])

        # Recovery: unreserved, logged, recorded on the server; once.
        self._set_health(GPU1, device_mod.Health.ok())
        self._set_health(GPU2, device_mod.Health.ok())
        self._run_periodics()
        self._run_periodics()
        self.assertEqual(0, self._inventory(PROVIDER)['reserved'])
        recovered = self.log_lines('is healthy again')
        self.assertEqual(2, len(recovered), recovered)
        self.assertIn('(server %s holds it)' % first['id'], recovered[0])
        self.assertEqual(['accelerator_recovered', 'accelerator_unhealthy'],
                         [a['action'] for a in self._health_actions(first)])
        fourth = self._create_server(flavor_id=flavor, networks='none')
        self.assertEqual([GPU2],
                         self.hostdev_addresses(self.last_config(fourth)))

    def test_restart_does_not_report_a_known_unhealthy_gpu_again(self):
        fake.FakeDriver.DEVICES = [fake.make_device(GPU1, numa_node=0)]
        self.start_compute('host1', host_info=self.host_info())
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                     networks='none')
        self._set_health(GPU1, device_mod.Health.bad(XID79))
        self._run_periodics()
        self.assertEqual(1, len(self._health_actions(server)))
        inventory = self._inventory(PROVIDER)

        self.restart_compute('host1')
        self._run_periodics()
        self.assertEqual(1, len(self._health_actions(server)))
        self.assertEqual(inventory, self._inventory(PROVIDER))
        # ...but a recovery seen after the restart is.
        self._set_health(GPU1, device_mod.Health.ok())
        self._run_periodics()
        self.assertEqual(['accelerator_recovered', 'accelerator_unhealthy'],
                         [a['action'] for a in
                          self._health_actions(server)])


class TestUnsafeDevicesAreNotOffered(HealthTestBase):

    def test_shared_iommu_group_host_driver_or_no_reset_gets_no_inventory(
            self):
        root = os.path.join(self.useFixture(fixtures.TempDir()).path, 'sys')
        os.makedirs(root)
        # Four GPUs, each alone in its IOMMU group and bound to vfio-pci...
        b = hosts.gpu_host(root, [0, 0, 1, 1])
        # ...then GPU 2 shares its group with a host NIC (no ACS),
        b.device('0000:20:00.1', vendor='0x8086', product='0x1572',
                 class_id='0x020000', numa_node=0, local_cpulist='0-3',
                 parent='0000:00:02.0', kernel_driver='i40e',
                 iommu_group=103)
        # GPU 3 is used by the host, GPU 4 cannot be reset.
        b.bind('0000:30:00.0', 'nvidia')
        b.set_attr('0000:40:00.0', 'reset_method', None)
        self.flags(sysfs_root=root, group='accelerator')
        self.start_compute('host1', host_info=fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=4, cpu_threads=1,
            kB_mem=16 * 1024 * 1024))

        totals = {name: inv['PGPU']['total'] for name, inv in
                  self.inventories('host1').items() if 'PGPU' in inv}
        self.assertEqual({'host1_PGPU_10de_2330_NUMA0': 1}, totals)
        log = self.stdlog.logger.output
        for address, why in (('0000:20:00.0', 'not isolated'),
                             ('0000:30:00.0', 'in use by the host'),
                             ('0000:40:00.0', 'cannot be reset')):
            self.assertIn('Accelerator %s is not offered: %s'
                          % (address, why), log)


class TestRestartReconcile(HealthTestBase):
    """What nova-compute finds when it starts: guests, Placement, records
    and devices compared; the safe fixes made, the rest reported."""

    def _instance(self, server):
        return objects.Instance.get_by_uuid(
            nova_context.get_admin_context(), server['id'],
            expected_attrs=['system_metadata'])

    def _domain(self, server):
        conn = self.driver_of('host1')._get_connection()
        return conn.lookupByUUIDString(server['id'])

    def _state(self, server):
        return {
            'inventories': self.inventories('host1'),
            'usage': self.gpu_usage('host1'),
            'allocations': self.placement.get(
                '/allocations/%s' % server['id']).body['allocations'],
            'xml': self._domain(server).XMLDesc(0),
            'guest configs built': len(self.guest_configs[server['id']]),
            'system_metadata': dict(self._instance(server).system_metadata),
        }

    def test_restarting_nova_compute_changes_nothing_that_did_not_change(
            self):
        self.start_gpu_compute('host1', gpu_nodes=[0, 1])
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                     networks='none')
        self._run_periodics()
        before = self._state(server)
        self.assertEqual(1, sum(before['usage'].values()))

        self.restart_compute('host1')
        self._run_periodics()

        self.assertEqual(before, self._state(server))
        [line] = self.log_lines('Accelerator reconcile:')
        self.assertIn('1 guest(s), 1 instance(s), 1 consumer(s) of 2 group '
                      'provider(s): consistent', line)

    def test_restart_heals_a_lost_record_and_reports_a_lost_device(self):
        self.start_gpu_compute('host1', gpu_nodes=[0, 1])
        flavor = self.gpu_flavor(gpus=1)
        kept = self._create_server(flavor_id=flavor, networks='none')
        lost = self._create_server(flavor_id=flavor, networks='none')
        driver = self.driver_of('host1')
        [kept_gpu] = driver._guest_devices()[kept['id']]
        [lost_gpu] = driver._guest_devices()[lost['id']]
        # The record of one server is lost; the other server's guest lost
        # its device (its record and allocation still name it).
        inst = self._instance(kept)
        for key in list(inst.system_metadata):
            if key.startswith(instance_record.PREFIX):
                del inst.system_metadata[key]
        inst.save()
        self._domain(lost)._def['devices']['hostdevs'] = []

        self.restart_compute('host1')

        self.assertEqual([kept_gpu], reconcile.recorded(
            self._instance(kept), 'host1'))
        healed = self.log_lines('the record now says what the guest holds')
        self.assertEqual(1, len(healed), healed)
        self.assertIn(kept['id'], healed[0])
        [error] = self.log_lines('ERROR [cyborg_nova')
        for part in ('Placement allocated 1 unit(s) of provider host1_PGPU',
                     lost['id'], 'its record still names %s' % lost_gpu,
                     'openstack server reboot --hard %s' % lost['id']):
            self.assertIn(part, error)
        # Doing what it says puts the device back.
        self._reboot_server(lost, hard=True)
        self.assertEqual({kept['id']: [kept_gpu], lost['id']: [lost_gpu]},
                         driver._guest_devices())
