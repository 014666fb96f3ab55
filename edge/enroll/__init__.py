"""Enrollment at the kiosk, and the installer's check of it.

    quality.py   the quality gates a frame must pass to become a template
    one_person.py  do the frames show one person (mixed enrollments are refused)
    capture.py   enroll(): frames in, gates, duplicate checks, one gallery transaction
    identify.py  who the kiosk would say a photo shows (`edge-verify identify`)
"""
