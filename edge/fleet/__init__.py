"""A kiosk in a site with many doors (the hub is edge/hub/).

    names.py    site/device names and the MQTT topic tree
    sitekey.py  templates sealed under the site key; the key wrapped per device
    bundle.py   the provisioning bundle from `hub add-device`
    mqtt.py     TLS + client certificate + password connection to the site's broker
    agent.py    the kiosk's fleet agent: gallery sync, event sending, status
    spool.py    the durable, bounded event spool (the daemon writes, the agent sends)
    policy.py   the site's offline policy and the last contact with the hub
    metrics.py  Prometheus text endpoint on loopback (kiosk agent and hub)
    status.py   what `fleet status` and the selftest show
"""
