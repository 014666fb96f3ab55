"""Enrollment at the kiosk, and the installer's check of it.

    quality.py   the quality gates a frame must pass to become a template
    capture.py   enroll(): frames in, gates, duplicate checks, one gallery transaction
    identify.py  who the kiosk would say a photo shows (`edge-verify identify`)
"""
