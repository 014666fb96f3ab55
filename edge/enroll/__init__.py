"""Enrollment at the kiosk, and the installer's check of it.

    quality.py     the quality gates a frame must pass to become a template
    one_person.py  do the frames show one person (mixed enrollments are refused)
    poses.py       the looks asked for at the camera; which templates to keep
    capture.py     enroll(): frames in, gates, the door's duplicate check, one gallery transaction
    coverage.py    how well a person's templates cover them (`gallery show NAME`)
    identify.py    who the kiosk would say a photo (or several, combined) shows (`edge-verify identify`)
    kiosk.py       enrollment frames from the running daemon's camera, door held locked
"""
