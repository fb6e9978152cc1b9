"""The miniature of the paper's DAG: stand-ins of every data set and checkpoint, served on 127.0.0.1.

``config/miniature.yaml`` runs every job of the paper's grid on CPU in minutes. Nothing is downloaded from
the internet, and nothing is short-circuited either:

* :mod:`k3dn.miniature.standins` renders each data set in its real layout and container (the DPD-blur zip
  with its label files, the Pixel set's 14-bit raw views and calibration, both DPD-disp layouts, a NYU-v2
  ``.mat``, a SYNTHIA-SF zip) with the suite's DP renderer, and writes random weights in every published
  checkpoint container (:mod:`k3dn.miniature.weights`);
* :mod:`k3dn.miniature.mirror` lays them out as the registries' URLs would (``<host>/<path>``), writes derived
  registries whose URLs point at the local server and whose published checksums are the stand-ins', and puts
  the manual-only files (sync.com links, web forms) where a user would;
* :mod:`k3dn.miniature.serve` is the HTTP server (with ``Range`` support) that the workflow starts and stops.

So a miniature run fetches, verifies, unpacks and strictly loads exactly as a paper run does.
"""
