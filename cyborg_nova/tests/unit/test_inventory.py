"""Locality groups: what each group provider offers Placement."""

import testtools

from cyborg_nova import device
from cyborg_nova.policy import inventory


def gpu(address, node=0, healthy=True, reasons=()):
    return device.Device(
        address=address, vendor_id='10de', product_id='2330',
        class_id='030200', resource_class='PGPU', numa_node=node,
        health=device.Health(healthy, '' if healthy else 'XID 79'),
        reasons=tuple(reasons), traits=frozenset({'CUSTOM_X'}))


class LocalityGroupsTest(testtools.TestCase):

    def test_one_group_per_numa_node_with_device_counts(self):
        groups = inventory.locality_groups(
            [gpu('0000:01:00.0', 0), gpu('0000:02:00.0', 1),
             gpu('0000:03:00.0', 1)])
        self.assertEqual([('PGPU_10de_2330_NUMA0', 1),
                          ('PGPU_10de_2330_NUMA1', 2)],
                         [(g.key.suffix, g.total) for g in groups])
        self.assertIn('CUSTOM_ACCEL_GROUP', groups[0].traits)

    def test_free_unhealthy_device_is_reserved_not_removed(self):
        [group] = inventory.locality_groups(
            [gpu('0000:01:00.0'), gpu('0000:02:00.0', healthy=False)])
        self.assertEqual((2, 1, 0, 1),
                         (group.total, group.reserved, group.in_use,
                          group.free))

    def test_held_unhealthy_device_takes_one_slot_only(self):
        # Its guest's allocation counts it; reserving it as well would
        # keep the healthy free device from being scheduled.
        [group] = inventory.locality_groups(
            [gpu('0000:01:00.0'), gpu('0000:02:00.0', healthy=False)],
            in_use={'0000:02:00.0'})
        self.assertEqual((2, 0, 1, 1),
                         (group.total, group.reserved, group.in_use,
                          group.free))
        self.assertEqual(0, inventory.inventory_record(group)['reserved'])

    def test_unassignable_device_is_offered_only_while_held(self):
        bad = gpu('0000:02:00.0', reasons=('not isolated',))
        self.assertEqual([1], [g.total for g in inventory.locality_groups(
            [gpu('0000:01:00.0'), bad])])
        [group] = inventory.locality_groups(
            [gpu('0000:01:00.0'), bad], in_use={'0000:02:00.0'})
        self.assertEqual((2, 0, 1), (group.total, group.reserved,
                                     group.in_use))

    def test_provider_uuid_is_stable_and_per_host(self):
        a = inventory.provider_uuid('root-a', 'PGPU_10de_2330_NUMA0')
        self.assertEqual(a, inventory.provider_uuid(
            'root-a', 'PGPU_10de_2330_NUMA0'))
        self.assertNotEqual(a, inventory.provider_uuid(
            'root-b', 'PGPU_10de_2330_NUMA0'))


def vgpu_parent(address, node=0, capacity=8, used=0, healthy=True,
                reasons=()):
    return device.Device(
        address=address, vendor_id='10de', product_id='1eb8',
        class_id='030200', resource_class='VGPU', numa_node=node,
        health=device.Health(healthy, '' if healthy else 'XID 79'),
        reasons=tuple(reasons), traits=frozenset({'CUSTOM_X'}),
        capabilities={'mdev_type': 'nvidia-223', 'vgpu_capacity': capacity,
                      'vgpu_used': used})


class VGPUGroupsTest(testtools.TestCase):
    """A VGPU group counts vGPUs: capacity, mdevs in use, per parent."""

    def summary(self, group):
        return (group.total, group.reserved, group.in_use, group.free,
                group.largest_free_island)

    def test_total_is_the_vgpu_capacity_of_the_parents(self):
        [group] = inventory.locality_groups(
            [vgpu_parent('0000:01:00.0'), vgpu_parent('0000:02:00.0', 0, 16)])
        self.assertEqual('VGPU_10de_1eb8_nvidia-223_NUMA0', group.key.suffix)
        self.assertEqual((24, 0, 0, 24, 16), self.summary(group))
        record = inventory.inventory_record(group)
        self.assertEqual((24, 0, 24), (record['total'], record['reserved'],
                                       record['max_unit']))

    def test_in_use_counts_mdevs_from_sysfs_by_default(self):
        [group] = inventory.locality_groups(
            [vgpu_parent('0000:01:00.0', used=3)])
        self.assertEqual((8, 0, 3, 5, 5), self.summary(group))

    def test_in_use_counts_what_the_caller_says(self):
        [group] = inventory.locality_groups(
            [vgpu_parent('0000:01:00.0', used=1),
             vgpu_parent('0000:02:00.0')],
            in_use={'0000:01:00.0'},
            vgpus_in_use={'0000:01:00.0': 2, '0000:02:00.0': 1})
        self.assertEqual((16, 0, 3, 13, 7), self.summary(group))

    def test_unhealthy_parent_reserves_what_its_guests_do_not_use(self):
        [group] = inventory.locality_groups(
            [vgpu_parent('0000:01:00.0', used=2, healthy=False),
             vgpu_parent('0000:02:00.0')])
        self.assertEqual((16, 6, 2, 8, 8), self.summary(group))
        self.assertEqual(6, inventory.inventory_record(group)['reserved'])

    def test_unassignable_parent_is_offered_only_while_it_has_mdevs(self):
        bad = dict(reasons=('not isolated',))
        self.assertEqual([], inventory.locality_groups(
            [vgpu_parent('0000:01:00.0', **bad)]))
        [group] = inventory.locality_groups(
            [vgpu_parent('0000:01:00.0', used=1, **bad)])
        self.assertEqual((8, 7, 1, 0, 0), self.summary(group))

    def test_parents_of_different_mdev_types_are_groups_of_their_own(self):
        other = vgpu_parent('0000:02:00.0')
        other.capabilities['mdev_type'] = 'nvidia-222'
        other.traits = frozenset({'CUSTOM_MDEV_TYPE_NVIDIA_222'})
        mine = vgpu_parent('0000:01:00.0')
        mine.traits = frozenset({'CUSTOM_MDEV_TYPE_NVIDIA_223'})
        groups = inventory.locality_groups([mine, other])
        self.assertEqual(
            [('VGPU_10de_1eb8_nvidia-222_NUMA0', ['0000:02:00.0']),
             ('VGPU_10de_1eb8_nvidia-223_NUMA0', ['0000:01:00.0'])],
            sorted((g.key.suffix, g.devices) for g in groups))
        # So a flavor's trait:CUSTOM_MDEV_TYPE_* names one type.
        for group in groups:
            self.assertEqual(1, len([t for t in group.traits
                                     if t.startswith('CUSTOM_MDEV_TYPE_')]))

    def test_pgpu_and_vgpu_groups_side_by_side(self):
        groups = inventory.locality_groups(
            [gpu('0000:01:00.0'), vgpu_parent('0000:02:00.0', used=1)],
            in_use={'0000:01:00.0'})
        self.assertEqual([('PGPU_10de_2330_NUMA0', 1, 1),
                          ('VGPU_10de_1eb8_nvidia-223_NUMA0', 8, 1)],
                         [(g.key.suffix, g.total, g.in_use) for g in groups])
