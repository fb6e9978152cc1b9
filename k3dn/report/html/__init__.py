"""``results/report.html``: every table and figure of a run in one self-contained page, read like a results section.

Each table (``results/tables/*.csv``) opens with its headline view. A quality table's is the method, our mean PSNR
over its combined group (every image; a table without one shows its last group, named in the PSNR column) with the
95% bootstrap interval of that mean, the published PSNR, their difference, the other metrics, and the paired
difference from the K3DN reference row; the interval and the paired difference stand there only where they average
the same images (the table's ``ci_group``). A speed table's shows seconds beside the device they were measured on,
the published time, the parameters (M) and GMACs. Any other table (protocol sensitivity, defocus) shows its
columns as written, less long text, hashes and provenance of one value. A row of result images made outside the
suite (``prediction_source`` external) is marked external in every table, the plot and the pairwise matrix. Its
title is the table spec's words with the image count and protocol of the CSV (``n_images``, ``protocol``). Long
text (sources, why a difference is missing, notes) becomes numbered footnotes, and every CSV column,
indoor/outdoor included, is one click away in a ``<details>`` element. Two comparisons, two yardsticks:

* published against ours: a published table gives means only, no per-image values, so no paired interval exists
  for the gap. The image-to-image spread in our unpaired interval is shared by both numbers and says nothing
  about it. A PSNR gap is marked when it exceeds the reproduction tolerance, :data:`TOLERANCE_DB` (never on an
  external row: re-scored images made elsewhere are no reproduction).
* ours against ours (``psnr_vs_ref``, the K3DN row; the pairwise matrix of ``k3dn report pairwise``): both are
  scored on the same images, so the paired bootstrap interval of the per-image difference is the right
  yardstick; a difference is marked where it excludes 0.

Per test set (the tables' ``test`` in ``table_specs``), a plot of every row's mean PSNR with its interval, the
blurry input as a line with its interval, the published values marked and rows not run crossed out, and, where the
spec gives its CSV, the pairwise matrix.

Nothing runs off a 1400 px page: a table is never wider than the page (its cells may break anywhere, so its
smallest width is small; the pairwise matrix has a fixed layout), a headline's numbers stay on one line, and
hashes are shortened (the full value in the cell's ``title``). An inline script writes what the page measures on
load into ``<body>`` (``data-scroll-width``, ``data-client-width``: the visible width, the window's less its
scrollbar, ``data-viewport-width``, ``data-widest-table``, ``data-widest-table-in``), so a headless browser can
check it (``tests/test_report_html.py``). Figures are embedded as base64 PNG, so the file opens with no network
and no other file. The footer summarises the provenance (commits, config hashes, data checksums, devices, dtypes,
the paper tables' protocols), counting ``external``, ``unknown`` and ``none`` apart, with every value and where it
is used behind a toggle.

The modules, each importing only those listed before it:

* ``text``: CSV cells, protocols and titles in words; a table's groups, headline group and kind.
* ``provenance``: the footer's summary of the provenance columns.
* ``views``: a table as cells (the headline view, the plain view, every column in blocks) and its HTML.
* ``plots``: the PSNR plot of a test set.
* ``pairwise``: the pairwise matrix of a test set.
* ``page``: the template and :func:`build_report`, which writes the file.
"""

from k3dn.report.html.page import build_report, report_from_spec
from k3dn.report.html.pairwise import pairwise_view
from k3dn.report.html.plots import psnr_points
from k3dn.report.html.provenance import provenance_summary, provenance_values
from k3dn.report.html.text import table_title
from k3dn.report.html.views import TOLERANCE_DB, headline, render_table

__all__ = [
    "TOLERANCE_DB",
    "build_report",
    "headline",
    "pairwise_view",
    "provenance_summary",
    "provenance_values",
    "psnr_points",
    "render_table",
    "report_from_spec",
    "table_title",
]
