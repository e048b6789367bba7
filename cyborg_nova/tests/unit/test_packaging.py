"""What the built wheel holds: one module under nova/, and our entry points."""

import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import testtools

import cyborg_nova

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    cyborg_nova.__file__)))

DRIVERS = {'pci', 'nvidia', 'mdev', 'numa_pinning', 'fake'}


def _is_source_tree(path):
    return os.path.isfile(os.path.join(path, 'setup.cfg'))


@unittest.skipUnless(_is_source_tree(REPO_ROOT),
                     'cyborg_nova is not imported from a source tree')
class TestWheel(testtools.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._tmp = tempfile.TemporaryDirectory(prefix='cyborg-nova-wheel-')
        # setuptools builds in build/ and never prunes it: a stale copy of
        # a deleted module would land in the wheel.
        shutil.rmtree(os.path.join(REPO_ROOT, 'build'), ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
             '--no-build-isolation', '--disable-pip-version-check', '-q',
             '-w', cls._tmp.name, '.'],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        if proc.returncode:
            cls._tmp.cleanup()
            raise AssertionError('pip wheel failed (%d):\n%s'
                                 % (proc.returncode, proc.stdout))
        wheels = [f for f in os.listdir(cls._tmp.name) if f.endswith('.whl')]
        if len(wheels) != 1:
            cls._tmp.cleanup()
            raise AssertionError('expected one wheel, got %s' % wheels)
        with zipfile.ZipFile(os.path.join(cls._tmp.name, wheels[0])) as whl:
            cls.names = whl.namelist()
            ep_name = next(n for n in cls.names
                           if n.endswith('.dist-info/entry_points.txt'))
            cls.entry_points = configparser.ConfigParser(delimiters=('=',))
            cls.entry_points.optionxform = str
            cls.entry_points.read_string(whl.read(ep_name).decode())

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()
        super().tearDownClass()

    def test_only_the_shim_is_under_nova(self):
        under_nova = [n for n in self.names if n.startswith('nova/')]
        self.assertEqual(['nova/virt/cyborg_nova.py'], under_nova)

    def test_package_is_in_the_wheel(self):
        self.assertIn('cyborg_nova/__init__.py', self.names)
        self.assertIn('cyborg_nova/virt_hooks/driver.py', self.names)

    def test_driver_entry_points(self):
        self.assertTrue(self.entry_points.has_section('cyborg_nova.drivers'))
        self.assertTrue(
            DRIVERS.issubset(self.entry_points['cyborg_nova.drivers']),
            'missing drivers: %s' % sorted(
                DRIVERS - set(self.entry_points['cyborg_nova.drivers'])))

    def test_config_entry_point(self):
        self.assertEqual(
            'cyborg_nova.conf.opts:list_opts',
            self.entry_points['oslo.config.opts']['cyborg_nova'].strip())

    def test_console_script(self):
        self.assertIn('cyborg-nova', self.entry_points['console_scripts'])
