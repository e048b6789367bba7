"""The deployment check runs where it should: when nova-scheduler starts
(Placement's settings, read from ``placement.conf``) and when nova-compute
starts (overlap with Nova's own mdev support), and says what to change."""

import os

import fixtures

from cyborg_nova.tests.functional import gpu_base


class TestDeploymentCheck(gpu_base.GPUTestBase):

    def _setup_scheduler_service(self):
        # Findings are logged once per process: start from none logged.
        self.useFixture(fixtures.MonkeyPatch(
            'cyborg_nova.deployment_check._logged', set()))
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'placement.conf')
        with open(path, 'w') as f:
            f.write('[placement]\nmax_allocation_candidates = 10\n')
        self.flags(placement_config_file=path, group='accelerator')
        return super()._setup_scheduler_service()

    def log_lines(self, text):
        return [line for line in self.stdlog.logger.output.splitlines()
                if text in line]

    def test_scheduler_start_warns_about_placement_settings(self):
        [randomize] = self.log_lines(
            'Deployment check: WARNING: [placement] '
            'randomize_allocation_candidates')
        self.assertIn('set it to True in placement.conf', randomize)
        [limit] = self.log_lines(
            'Deployment check: WARNING: [placement] max_allocation_candidates')
        self.assertIn('10 with depth-first generation', limit)
        # The harness's filters are ours, in order: said at INFO.
        self.assertEqual(1, len(self.log_lines(
            'Deployment check: OK: [filter_scheduler] enabled_filters')))

    def test_compute_start_says_nova_must_not_manage_mdevs_too(self):
        self.flags(enabled_mdev_types=['nvidia-223'], group='devices')
        self.flags(enabled_mdev_types=['nvidia-223'], group='accelerator')
        self.start_gpu_compute('host1', gpu_nodes=[0])
        [line] = self.log_lines(
            'Deployment check: ERROR: [devices] enabled_mdev_types')
        self.assertIn('unset [devices] enabled_mdev_types', line)
        # The compute still starts: the check never stops a service.
        self.assertEqual('up', self.admin_api.get_services(
            host='host1', binary='nova-compute')[0]['state'])
