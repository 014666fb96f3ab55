"""The web console: installers and technicians at the kiosk, site administrators at the hub.

    web.py         the HTTPS server and router (standard library; why: see its docstring)
    sessions.py    sessions, cookies, CSRF tokens, the login throttle
    app.py         what both consoles share: login, logout, CSRF and origin checks, static files
    html.py        escaped HTML helpers; static/ holds the one script and the one stylesheet
    kiosk.py       the kiosk's pages (live view, enrollment, people, identify, decisions, camera,
                   liveness, self-test, door)
    enrollment.py  one enrollment from the console, on its own thread, pose by pose
    hub.py         the hub's pages (people across the doors: enroll from photos, rename, remove;
                   devices, decisions)
    settings.py    where the console listens; tls.py its certificate; serve.py starting it

The daemon's side (its frames, faces and decisions, door holds) is edge.daemon.share.
"""
