"""``make demo``: one mixed workload, booted twice in an embedded cloud.

``python -m cyborg_nova.demo`` runs real Nova services (API, conductor,
scheduler, Placement, computes on fake libvirt hosts) in this process,
through Nova's own functional-test harness, with no OpenStack installed.
The same fleet of GPU and CPU-only hosts takes the same servers twice:

* with cyborg-nova (its compute driver, filter and weighers);
* with stock Nova 34 PCI passthrough as its documentation configures it.

It prints, for each server, where it landed, which GPU it got, on which
NUMA node, where its vCPUs and memory are, and whether they are aligned;
then a summary of both runs.  Nova's logs go to files, named only when a
run fails.

* :mod:`cyborg_nova.demo.report`: the fleet, the workload and the tables
  (plain data, no Nova);
* :mod:`cyborg_nova.demo.scenario`: the two runs in Nova's harness.
"""

import logging
import os
import sys
import tempfile

#: What Nova's functional harness needs in the environment before Nova is
#: imported (the Makefile's TEST_ENV, as Nova's own tox.ini sets it).
HARNESS_ENV = {
    'NOVA_RAISE_ON_GREENLET_LEAK': 'True',
    'OS_NOVA_DISABLE_EVENTLET_PATCHING': 'False',
    'OS_TEST_TIMEOUT': '160',
    'OS_STDOUT_CAPTURE': '1',
    'OS_STDERR_CAPTURE': '1',
    'OS_LOG_CAPTURE': '1',
}


def api_paste_config():
    """Where pip put Nova's ``api-paste.ini`` in this environment."""
    return os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


def prepare_environment(environ=None):
    """Set what the harness needs, keeping what the caller already set.

    Must run before Nova is imported.  Returns the names it set.
    """
    environ = os.environ if environ is None else environ
    wanted = dict(HARNESS_ENV)
    wanted['OS_WSGI__API_PASTE_CONFIG'] = api_paste_config()
    set_here = []
    for name, value in wanted.items():
        if name not in environ:
            environ[name] = value
            set_here.append(name)
    return set_here


#: Resolved once, outside any test: Nova's test base points the
#: ``tempfile`` module at a directory it deletes after each test.
_DEFAULT_LOG_DIR = os.path.join(tempfile.gettempdir(), 'cyborg-nova-demo')


def log_dir():
    """Where the demo writes Nova's logs (``$CYBORG_NOVA_DEMO_LOGS``, else
    ``cyborg-nova-demo`` in the temporary directory)."""
    return os.environ.get('CYBORG_NOVA_DEMO_LOGS') or _DEFAULT_LOG_DIR


def quiet_logging(fresh=True):
    """Send every log record and warning emitted outside a scenario's own
    log capture (imports, service shutdown) to ``harness.log`` in
    :func:`log_dir`, instead of the terminal; *fresh* starts that file
    anew.  Call it again after importing ``nova.test``, whose import sets
    up oslo.log's terminal handler.  Returns the path."""
    os.makedirs(log_dir(), exist_ok=True)
    path = os.path.join(log_dir(), 'harness.log')
    handler = logging.FileHandler(path, mode='w' if fresh else 'a')
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s [%(name)s] %(message)s'))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    return path
