"""The on-device service: the frame loop and its ties to systemd.

    config.py     the settings table: /etc/edge-verify/config.toml and the `run` flags
    decision.py   pure rules: a match, enough frames combined, K of N, cooldown, the 1:N threshold
    tracking.py   faces followed across frames; a track's frames combined into one probe
    frames.py     one frame -> the primary face's embedding (or why there is none)
    watch.py      the gallery in memory, reloaded when it changes
    parts.py      building the pipeline, gallery, events and camera from settings (the door: edge.door)
    loop.py       Daemon: start-up order (door first), the loop, fail-secure shutdown
    notify.py     sd_notify (READY, WATCHDOG, STATUS) without dependencies
"""
