"""A server boots on a compute running cyborg-nova's driver."""

import os
import sys
import unittest

import nova
from nova.virt.libvirt import driver as libvirt_driver

from cyborg_nova.tests.functional import base
from cyborg_nova.virt_hooks import driver as cn_driver


class TestBootOnAcceleratedDriver(base.AcceleratorTestBase):

    HOST_INFO = {
        'compute1': base.AcceleratorTestBase.host_info(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=2, cpu_threads=2),
    }

    def test_compute_loads_driver_by_operator_name(self):
        self.assertEqual('cyborg_nova.AcceleratedLibvirtDriver',
                         base.CONF.compute_driver)
        self.start_compute('compute1')
        driver = self.driver_of('compute1')
        self.assertIsInstance(driver, cn_driver.AcceleratedLibvirtDriver)
        self.assertIsInstance(driver, libvirt_driver.LibvirtDriver)
        self.assertIn('accelerator', base.CONF)

    def test_server_boots_active(self):
        self.start_compute('compute1')
        server = self._create_server(networks='none')
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual('compute1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual(
            1, len(self.driver_of('compute1').list_instance_uuids()))

    def test_hosts_get_their_own_numa_layout(self):
        self.start_compute('compute1')
        self.start_compute('compute2', host_info=self.host_info(
            cpu_nodes=1, cpu_sockets=1, cpu_cores=4, cpu_threads=1))
        cells = {
            host: len(self.driver_of(host)._host.get_capabilities()
                      .host.topology.cells)
            for host in ('compute1', 'compute2')}
        self.assertEqual({'compute1': 2, 'compute2': 1}, cells)

    @unittest.skipUnless(base.shim_is_installed(),
                         'nova/virt/cyborg_nova.py is not installed (editable '
                         'install?): the tests alias the module instead')
    def test_nova_loads_the_installed_shim(self):
        self.start_compute('compute1')
        shim = sys.modules[base.SHIM_MODULE]
        self.assertEqual(
            os.path.join(os.path.dirname(nova.__file__), 'virt'),
            os.path.dirname(shim.__file__))
        self.assertIs(shim.AcceleratedLibvirtDriver,
                      type(self.driver_of('compute1')))
