"""The on-device service: the frame loop and its ties to systemd.

``edge.daemon.notify`` speaks sd_notify (READY, WATCHDOG, STATUS) without
dependencies.
"""
