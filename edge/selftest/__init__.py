"""`edge-verify selftest`: is it the camera, the compute module, the relay, the gallery or the system?

One module per group of checks (camera, compute, door, gallery, system), each
with ``run(context, step)``; ``runner`` runs the chosen groups and reports each
check as PASS, FAIL or SKIP with a line a technician can act on. The settings
are the daemon's own (``settings``), and the machine is reached through
``context.Context``, whose probes tests replace to inject faults.
"""
