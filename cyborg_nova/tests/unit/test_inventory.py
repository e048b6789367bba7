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
