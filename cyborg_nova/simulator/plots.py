"""PNG plots of acceptance and NUMA alignment against fleet load."""

import os

from cyborg_nova.simulator import metrics

MISSING = ('plots skipped: matplotlib is not installed (pip install '
           'matplotlib, or install test-requirements.txt)')


def write(sims, out_dir):
    """Write ``acceptance.png`` and ``alignment.png`` under *out_dir*;
    returns the paths written, or raises ImportError (see MISSING)."""
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib import pyplot

    os.makedirs(out_dir, exist_ok=True)
    written = []
    for name, title, value in (
            ('acceptance', 'GPU requests accepted',
             lambda r: r.accepted),
            ('alignment', 'placed GPU servers NUMA-aligned',
             lambda r: r.aligned if r.accepted else None)):
        fig, ax = pyplot.subplots(figsize=(6, 4))
        for sim in sims:
            pts = metrics.by_load(sim.records, value)
            ax.plot([p[0] * 100 for p in pts], [p[1] * 100 for p in pts],
                    marker='o', label=sim.policy)
        ax.set_xlabel('GPUs in use when the request arrived (%)')
        ax.set_ylabel('%')
        ax.set_ylim(-5, 105)
        ax.set_xlim(0, 100)
        ax.set_title(title)
        ax.legend()
        path = os.path.join(out_dir, '%s.png' % name)
        fig.savefig(path, dpi=100, bbox_inches='tight')
        pyplot.close(fig)
        written.append(path)
    return written
