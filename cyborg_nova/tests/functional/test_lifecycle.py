"""A server keeps the right accelerators through every server operation.

Each test runs a sequence of operations through the real Nova API,
conductor, scheduler, Placement and computes, and after each step checks
the three things that must stay consistent: the ``<hostdev>`` addresses in
the guest XML our driver built, the guest's NUMA placement (``<vcpu
cpuset>`` and ``<numatune>`` of a shared-CPU guest, on its GPUs' node), and
Placement's usage of every GPU provider (no leaked, no doubled
allocation), with what the host's libvirt domains hold.

Hosts have 2 NUMA nodes of 4 CPUs: node 0 holds CPUs 0-3, node 1 CPUs 4-7.
GPU *i* of a host (0-based, in ``gpu_nodes`` order) is at PCI address
``0000:<i+1>0:00.0``.
"""

import threading
import time

from nova import conf as nova_conf
from nova import context as nova_context
from nova import objects

from cyborg_nova.tests.functional import gpu_base
from cyborg_nova.virt_hooks import instance_record

CONF = nova_conf.CONF

GPU1, GPU2, GPU3 = '0000:10:00.0', '0000:20:00.0', '0000:30:00.0'
NODE_CPUS = {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}


class TestLifecycle(gpu_base.GPUTestBase):

    ADMIN_API = True

    def setUp(self):
        super().setUp()
        self.allow_moves()
        self.ctxt = nova_context.get_admin_context()

    # -- helpers ---------------------------------------------------------

    def used(self, host):
        """``{'NUMA<n>': PGPU used}`` of a host's GPU providers, zeros
        left out."""
        prefix = '%s_PGPU_10de_2330_' % host
        return {name[len(prefix):]: n
                for name, n in self.gpu_usage(host).items() if n}

    def vcpus_used(self, host):
        return self._get_provider_usages(
            self.compute_rp_uuids[host]).get('VCPU', 0)

    def held(self, host):
        """``{instance uuid: sorted addresses}`` in the host's domains."""
        return {uuid: sorted(addrs) for uuid, addrs in
                self.driver_of(host)._guest_devices().items()}

    def records(self, server):
        """``{node: addresses}`` recorded on the instance in the DB."""
        inst = objects.Instance.get_by_uuid(
            self.ctxt, server['id'], expected_attrs=['system_metadata'])
        return {node: instance_record.devices_on(inst, node)
                for node in instance_record.nodes_of(inst)}

    def configs(self, server):
        return len(self.guest_configs[server['id']])

    def assertGuest(self, server, addresses, node):
        """The last XML built for *server* holds exactly *addresses*, with
        vCPUs and memory on NUMA *node* (None: unconstrained)."""
        cfg = self.last_config(server)
        self.assertEqual(sorted(addresses),
                         sorted(self.hostdev_addresses(cfg)))
        if node is None:
            self.assertIsNone(cfg.numatune)
            self.assertFalse(cfg.cpuset)
        else:
            self.assertEqual(NODE_CPUS[node], cfg.cpuset)
            self.assertEqual('strict', cfg.numatune.memory.mode)
            self.assertEqual([node], cfg.numatune.memory.nodeset)

    def hold_lock_during(self, server, task_state):
        """Hold the instance's lock, as ``cyborg-nova attach`` would, from
        now until a while after the instance reaches *task_state* on its
        compute; return the thread (``.seen`` tells what it saw)."""
        seen = {}
        held = threading.Event()

        def hold():
            with instance_record.instance_lock(server['id']):
                seen['held'] = True
                held.set()
                for _ in range(200):
                    inst = objects.Instance.get_by_uuid(self.ctxt,
                                                        server['id'])
                    if inst.task_state == task_state:
                        break
                    time.sleep(0.05)
                time.sleep(0.5)   # the compute is waiting for the lock
                seen['configs_while_held'] = self.configs(server)
            seen['released'] = True

        thread = threading.Thread(target=hold)
        thread.seen = seen
        thread.start()
        held.wait(10)
        return thread

    # -- tests -----------------------------------------------------------

    def test_power_operations_keep_the_gpu_and_its_numa_node(self):
        self.flags(resume_guests_state_on_host_boot=True)
        self.start_gpu_compute('host1', gpu_nodes=[1])
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                     networks='none')

        def check(step):
            self.assertGuest(server, [GPU1], 1)
            self.assertEqual({'NUMA1': 1}, self.used('host1'), step)
            self.assertEqual({server['id']: [GPU1]}, self.held('host1'),
                             step)
            self.assertEqual({'host1': [GPU1]}, self.records(server), step)

        check('boot')
        built = self.configs(server)

        server = self._stop_server(server)
        self.assertEqual({'NUMA1': 1}, self.used('host1'))
        self.assertEqual({server['id']: [GPU1]}, self.held('host1'))
        server = self._start_server(server)
        built += 1
        self.assertEqual(built, self.configs(server))
        check('start')

        server = self._reboot_server(server, hard=False)
        self.assertEqual(built, self.configs(server))   # same domain
        check('soft reboot')

        # A hard reboot waits for the lock cyborg-nova attach/detach take.
        holder = self.hold_lock_during(server, 'reboot_started_hard')
        server = self._reboot_server(server, hard=True)
        holder.join()
        self.assertEqual({'held': True, 'configs_while_held': built,
                          'released': True}, holder.seen)
        built += 1
        self.assertEqual(built, self.configs(server))
        check('hard reboot')

        self.restart_gpu_compute('host1', host_boot=True)
        built += 1
        self.assertEqual(built, self.configs(server))
        self.assertEqual('ACTIVE', self._show_server(server)['status'])
        check('host reboot')

        server = self._rebuild_server(
            server, '155d900f-4e14-4e4c-a73d-069cbf4541e6')
        built += 1
        self.assertEqual(built, self.configs(server))
        check('rebuild')

        self._delete_server(server)
        self.assertEqual({}, self.used('host1'))
        self.assertEqual({}, self.held('host1'))
        self.assertEqual(0, self.vcpus_used('host1'))

    def test_resize_to_two_gpus_elsewhere_revert_confirm_and_drop_them(self):
        # hostA: one GPU on node 1; hostB: two on node 0 (GPU1, GPU2) and
        # one on node 1 (GPU3).  PGPU=2 fits only on hostB's node 0.
        self.start_gpu_compute('hostA', gpu_nodes=[1])
        self.start_gpu_compute('hostB', gpu_nodes=[0, 0, 1])
        one, two = self.gpu_flavor(gpus=1), self.gpu_flavor(gpus=2)
        none = self.gpu_flavor(gpus=0)
        server = self._create_server(flavor_id=one, networks='none',
                                     host='hostA')
        self.assertGuest(server, [GPU1], 1)

        server = self._resize_server(server, two)
        self.assertEqual('hostB', self.host_of(server))
        self.assertGuest(server, [GPU1, GPU2], 0)
        # The migration holds the source GPU until confirm or revert, in
        # Placement and in the stopped source guest.
        self.assertEqual({'NUMA1': 1}, self.used('hostA'))
        self.assertEqual({'NUMA0': 2}, self.used('hostB'))
        self.assertEqual((2, 2), (self.vcpus_used('hostA'),
                                  self.vcpus_used('hostB')))
        self.assertEqual({server['id']: [GPU1]}, self.held('hostA'))
        self.assertEqual({server['id']: [GPU1, GPU2]}, self.held('hostB'))

        server = self._revert_resize(server)
        self.assertEqual('hostA', self.host_of(server))
        self.assertGuest(server, [GPU1], 1)
        self.assertEqual({'NUMA1': 1}, self.used('hostA'))
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({}, self.held('hostB'))
        self.assertEqual((2, 0), (self.vcpus_used('hostA'),
                                  self.vcpus_used('hostB')))
        self.assertEqual({'hostA': [GPU1]}, self.records(server))

        server = self._resize_server(server, two)
        server = self.confirm(server, 'hostA')
        self.assertGuest(server, [GPU1, GPU2], 0)
        self.assertEqual({}, self.used('hostA'))
        self.assertEqual({}, self.held('hostA'))
        self.assertEqual({'NUMA0': 2}, self.used('hostB'))
        self.assertEqual((0, 2), (self.vcpus_used('hostA'),
                                  self.vcpus_used('hostB')))
        self.assertEqual({'hostB': [GPU1, GPU2]}, self.records(server))

        # To a flavor without accelerators (any host): no device, no NUMA
        # constraint, nothing left allocated once confirmed.
        server = self._resize_server(server, none)
        dest = self.host_of(server)
        self.assertGuest(server, [], None)
        server = self.confirm(server, 'hostB')
        self.assertEqual({}, self.used('hostA'))
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({}, self.held('hostA'))
        self.assertEqual({}, self.held('hostB'))
        self.assertEqual({}, self.records(server))
        self.assertEqual(2, self.vcpus_used(dest))

    def test_resize_on_the_same_host_never_counts_a_gpu_twice(self):
        self.flags(allow_resize_to_same_host=True)
        self.start_gpu_compute('host1', gpu_nodes=[0, 0, 0, 0])
        gpu4 = '0000:40:00.0'
        one, two = self.gpu_flavor(gpus=1), self.gpu_flavor(gpus=2)
        server = self._create_server(flavor_id=one, networks='none')
        self.assertGuest(server, [GPU1], 0)

        def in_use():
            driver = self.driver_of('host1')
            return driver.accelerators.held(driver._guest_devices())

        # Placement holds the old flavor's GPU for the migration and two
        # for the new flavor: the new guest gets two others, and GPU1
        # stays reserved for a revert.
        server = self._resize_server(server, two)
        self.assertGuest(server, [GPU2, GPU3], 0)
        self.assertEqual({'NUMA0': 3}, self.used('host1'))
        self.assertEqual({GPU1, GPU2, GPU3}, in_use())

        # Even across a nova-compute restart: the next server gets the
        # last free GPU, not the one kept for the revert.
        self.restart_gpu_compute('host1')
        other = self._create_server(flavor_id=one, networks='none')
        self.assertGuest(other, [gpu4], 0)
        self.assertEqual({'NUMA0': 4}, self.used('host1'))
        self.assertEqual({GPU1, GPU2, GPU3, gpu4}, in_use())

        server = self._revert_resize(server)
        self.assertGuest(server, [GPU1], 0)
        self.assertEqual({'NUMA0': 2}, self.used('host1'))
        self.assertEqual({server['id']: [GPU1], other['id']: [gpu4]},
                         self.held('host1'))
        self.assertEqual({GPU1, gpu4}, in_use())
        self.assertEqual({'host1': [GPU1]}, self.records(server))

        server = self._resize_server(server, two)
        server = self.confirm(server, 'host1')
        self.assertGuest(server, [GPU2, GPU3], 0)
        self.assertEqual({'NUMA0': 3}, self.used('host1'))
        self.assertEqual({server['id']: [GPU2, GPU3], other['id']: [gpu4]},
                         self.held('host1'))
        self.assertEqual({GPU2, GPU3, gpu4}, in_use())
        self.assertEqual({'host1': [GPU2, GPU3]}, self.records(server))
        self.assertEqual(4, self.vcpus_used('host1'))

        # The freed GPU goes to the next server.
        third = self._create_server(flavor_id=one, networks='none')
        self.assertGuest(third, [GPU1], 0)

    def _offload_and_check_nothing_held(self, server):
        """Shelve-offload, then no host holds or counts anything for it."""
        self._shelve_server(server)
        for host in ('hostA', 'hostB'):
            self.assertEqual({}, self.used(host), host)
            self.assertEqual({}, self.held(host), host)
            self.assertEqual(0, self.vcpus_used(host), host)
        self.assertEqual({}, self.records(server))

    def test_shelve_offload_right_after_a_move_holds_only_new_gpus(self):
        # Stock Nova 34 kept the previous host's PCI claims when a server
        # was shelve-offloaded right after a move, before any periodic
        # update, and the unshelved guest's XML held both hosts' devices.
        # hostA: GPU1, GPU2 on node 0; hostB: GPU1 on node 1, GPU2 and
        # GPU3 on node 0.  PGPU=2 on hostB can only be GPU2 + GPU3.
        self.start_gpu_compute('hostA', gpu_nodes=[0, 0])
        self.start_gpu_compute('hostB', gpu_nodes=[1, 0, 0])
        two, one = self.gpu_flavor(gpus=2), self.gpu_flavor(gpus=1)
        server = self._create_server(flavor_id=two, networks='none',
                                     host='hostA')
        self.assertGuest(server, [GPU1, GPU2], 0)

        # Cold migration, confirmed, then shelve-offload at once.
        server = self._migrate_server(server, host='hostB')
        self.assertGuest(server, [GPU2, GPU3], 0)
        server = self.confirm(server, 'hostA')
        self._offload_and_check_nothing_held(server)

        self.api.post_server_action(server['id'],
                                    {'unshelve': {'host': 'hostA'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('hostA', self.host_of(server))
        self.assertGuest(server, [GPU1, GPU2], 0)
        self.assertEqual({'NUMA0': 2}, self.used('hostA'))
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({'hostA': [GPU1, GPU2]}, self.records(server))

        # Resize to one GPU (on hostB: no resize to the same host here),
        # confirmed, then shelve-offload at once, unshelve on hostA.
        server = self._resize_server(server, one)
        self.assertEqual('hostB', self.host_of(server))
        server = self.confirm(server, 'hostA')
        self._offload_and_check_nothing_held(server)
        self.api.post_server_action(server['id'],
                                    {'unshelve': {'host': 'hostA'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        [address] = self.hostdev_addresses(self.last_config(server))
        self.assertIn(address, (GPU1, GPU2))
        self.assertGuest(server, [address], 0)
        self.assertEqual({'NUMA0': 1}, self.used('hostA'))
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({server['id']: [address]}, self.held('hostA'))
        self.assertEqual({'hostA': [address]}, self.records(server))

    def test_evacuate_then_the_source_host_comes_back(self):
        self.start_gpu_compute('hostA', gpu_nodes=[1])
        self.start_gpu_compute('hostB', gpu_nodes=[0])
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                     networks='none', host='hostA')
        self.assertGuest(server, [GPU1], 1)

        self.computes['hostA'].stop()
        service = self.admin_api.get_services(
            host='hostA', binary='nova-compute')[0]
        self.admin_api.put_service(service['id'], {'forced_down': True})
        server = self._evacuate_server(server, expected_host='hostB')
        self.assertGuest(server, [GPU1], 0)
        self.assertEqual({'NUMA0': 1}, self.used('hostB'))
        self.assertEqual({server['id']: [GPU1]}, self.held('hostB'))
        # hostA is down: its allocation and its guest wait for it.
        self.assertEqual({'NUMA1': 1}, self.used('hostA'))
        self.assertEqual({'hostA': [GPU1], 'hostB': [GPU1]},
                         self.records(server))

        self.restart_gpu_compute('hostA')
        self.admin_api.put_service(service['id'], {'forced_down': False})
        self.assertEqual({}, self.used('hostA'))
        self.assertEqual({}, self.held('hostA'))
        self.assertEqual({'hostB': [GPU1]}, self.records(server))

        server = self._start_server(server)
        self.assertGuest(server, [GPU1], 0)
        self._delete_server(server)
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({}, self.held('hostB'))

    def test_live_migration_is_refused_and_nothing_changes(self):
        self.start_gpu_compute('hostA', gpu_nodes=[1])
        self.start_gpu_compute('hostB', gpu_nodes=[1])
        server = self._create_server(flavor_id=self.gpu_flavor(gpus=1),
                                     networks='none', host='hostA')
        built = self.configs(server)

        # Nova's harness turns the conductor's cast into a call, so the
        # refusal reaches the API as a 500 (a real API answers 202 and the
        # migration ends in error, as here).
        self.api.api_post(
            '/servers/%s/action' % server['id'],
            {'os-migrateLive': {'host': 'hostB', 'block_migration': 'auto'}},
            check_response_status=[500])
        self._wait_for_migration_status(server, ['error'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('hostA', self.host_of(server))
        self.assertIn('holds passthrough accelerator(s) 0000:10:00.0 on '
                      'host hostA, which cannot be live-migrated',
                      self.stdlog.logger.output)
        self.assertEqual(built, self.configs(server))
        self.assertGuest(server, [GPU1], 1)
        self.assertEqual({'NUMA1': 1}, self.used('hostA'))
        self.assertEqual({}, self.used('hostB'))
        self.assertEqual({server['id']: [GPU1]}, self.held('hostA'))
        self.assertEqual({}, self.held('hostB'))
        self.assertEqual({'hostA': [GPU1]}, self.records(server))

    def test_dedicated_cpu_server_is_pinned_near_its_gpu_after_moves(self):
        # Nova pins a dedicated-CPU guest itself, at its claim on each host;
        # the GPU's node must win there too.  hostA's GPU is on node 1,
        # hostB's on node 0.
        self.flags(cpu_dedicated_set='0-7', cpu_shared_set=None,
                   group='compute')
        self.start_gpu_compute('hostA', gpu_nodes=[1])
        self.start_gpu_compute('hostB', gpu_nodes=[0])
        flavor = self.gpu_flavor(gpus=1, **{'hw:cpu_policy': 'dedicated'})
        server = self._create_server(flavor_id=flavor, networks='none',
                                     host='hostA')

        def check(addresses, node, host):
            cfg = self.last_config(server)
            self.assertEqual(addresses, self.hostdev_addresses(cfg))
            pinned = set()
            for pin in cfg.cputune.vcpupin:
                pinned |= pin.cpuset
            self.assertEqual(2, len(pinned))
            self.assertTrue(pinned <= NODE_CPUS[node], pinned)
            self.assertEqual([node], cfg.numatune.memory.nodeset)
            self.assertEqual({'NUMA%d' % node: 1}, self.used(host))

        check([GPU1], 1, 'hostA')
        server = self._migrate_server(server, host='hostB')
        check([GPU1], 0, 'hostB')
        self.assertEqual({'NUMA1': 1}, self.used('hostA'))
        server = self.confirm(server, 'hostA')
        self.assertEqual({}, self.used('hostA'))
        server = self._reboot_server(server, hard=True)
        check([GPU1], 0, 'hostB')

        self._shelve_server(server)
        self.api.post_server_action(server['id'],
                                    {'unshelve': {'host': 'hostA'}})
        server = self._wait_for_state_change(server, 'ACTIVE')
        check([GPU1], 1, 'hostA')
        self.assertEqual({}, self.used('hostB'))
