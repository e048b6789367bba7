"""Options live in ``[accelerator]``; the sample config file is current."""

import os
import tempfile

from oslo_config import cfg
from oslo_config import generator
import testtools

import cyborg_nova
from cyborg_nova import conf as cn_conf
from cyborg_nova.conf import opts

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    cyborg_nova.__file__)))
GENERATOR_CONF = os.path.join(
    REPO_ROOT, 'etc', 'cyborg-nova', 'cyborg-nova-config-generator.conf')
SAMPLE = os.path.join(
    REPO_ROOT, 'etc', 'cyborg-nova', 'cyborg-nova.conf.sample')


class TestRegisterOpts(testtools.TestCase):

    def setUp(self):
        super().setUp()
        # Never the global CONF: a private config object per test.
        self.conf = cfg.ConfigOpts()
        cn_conf.register_opts(self.conf)
        self.conf([], project='cyborg-nova', default_config_files=[],
                  default_config_dirs=[])

    def test_group_is_accelerator(self):
        self.assertEqual('accelerator', cn_conf.GROUP)
        self.assertIn('accelerator', self.conf)

    def test_every_listed_option_is_registered_in_the_group(self):
        [(group, listed)] = opts.list_opts()
        self.assertEqual('accelerator', getattr(group, 'name', group))
        self.assertNotEqual([], listed)
        for opt in listed:
            self.assertIn(opt.dest, self.conf.accelerator,
                          '%s is listed but not registered' % opt.dest)

    def test_nothing_registered_outside_the_group(self):
        bare = cfg.ConfigOpts()
        bare([], project='cyborg-nova', default_config_files=[],
             default_config_dirs=[])
        self.assertEqual({'accelerator'}, set(self.conf) - set(bare))

    def test_register_twice_is_harmless(self):
        cn_conf.register_opts(self.conf)
        self.assertEqual('/sys', self.conf.accelerator.sysfs_root)

    def test_defaults_are_readable(self):
        self.assertEqual('/sys', self.conf.accelerator.sysfs_root)
        self.assertIn('pci', self.conf.accelerator.enabled_drivers)


class TestSampleConfig(testtools.TestCase):

    def _generate(self):
        conf = cfg.ConfigOpts()
        generator.register_cli_opts(conf)
        with tempfile.NamedTemporaryFile('r', suffix='.conf') as out:
            conf(['--config-file', GENERATOR_CONF,
                  '--output-file', out.name])
            generator.generate(conf)
            return out.read()

    def test_sample_is_up_to_date(self):
        generated = self._generate()
        # The namespace resolves through the installed entry point: an
        # empty result means the package is not installed.
        self.assertIn('[accelerator]', generated,
                      'namespace cyborg_nova not found: install the package '
                      '(make venv)')
        for opt in opts.list_opts()[0][1]:
            self.assertIn('\n#%s =' % opt.dest, generated)
        with open(SAMPLE) as f:
            committed = f.read()
        self.assertEqual(
            generated, committed,
            'etc/cyborg-nova/cyborg-nova.conf.sample is stale: run '
            '`make genconfig` (or `tox -e genconfig`) and commit the result')
