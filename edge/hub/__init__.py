"""The hub of a site with many doors: PostgreSQL holds the truth, Mosquitto carries it.

    schema.py    the tables
    db.py        HubDB: sites, people, the change feed, devices, events, audit
    admins.py    admin accounts: scrypt hashes, slow-down and lockout
    home.py      the hub's folder, hub.toml, CA, broker files, site keys, add/revoke device
    pki.py       the site CA and certificates
    broker.py    Mosquitto's config, password and ACL files
    enroll.py    enrollment at the hub with the kiosk's checks (SiteGallery)
    people.py    enroll from photos, rename, remove: the calls `hub ...` and the hub's console share
    service.py   `hub serve`: changes out, sync answers, events in
    commands.py  what each `edge-verify hub` command does
"""
