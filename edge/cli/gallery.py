"""`edge-verify gallery ...`: look at, back up and change the enrolled people."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge import paths
from edge.daemon import config
from edge.daemon.decision import combined_cohort, door_threshold
from edge.daemon.parts import liveness_status
from edge.enroll.coverage import describe, person_coverage
from edge.engines.manifest import read_manifest
from edge.exc import EdgeVerifyError
from edge.events import forget_person
from edge.gallery import authorise as check_token
from edge.gallery import import_into, open_gallery
from edge.gallery.auth import token_from
from edge.gallery.check import verify_gallery
from edge.gallery.crypto import default_key_path, load_key
from edge.gallery.inputs import normal_name
from edge.models.registry import EMBEDDING, engine_path
from edge.verify.api import embedding_space

HELP = """\
The gallery holds the enrolled people and their face templates, encrypted with
AES-GCM under the key file. Files (all under $EDGE_VERIFY_HOME unless given):
  gallery.sqlite        the gallery               (--gallery PATH)
  gallery.key           its key, mode 0600        (--key PATH)
  gallery.audit.jsonl   hash-chained audit log of every change, beside the gallery
  gallery.admin-token   salted hash of the admin token, beside the gallery

remove, rename, import, export, backup and acknowledge-break need the admin token (set it with
`edge-verify admin set-token`): pass --token TOKEN or set EDGE_VERIFY_ADMIN_TOKEN.
Backups and bundles are never written over the gallery's own files (gallery,
key, token, audit log); --force replaces only an earlier backup or bundle.

If the gallery file is damaged: move it aside and run
`edge-verify gallery import BACKUP`, where BACKUP is a file from `gallery backup`
or `gallery export`. Make backups regularly, e.g. from root's cron, with the token
in a root-only file:
`EDGE_VERIFY_ADMIN_TOKEN=$(cat /root/edge-verify-token) edge-verify gallery backup /var/backups/edge-verify/gallery-$(date +%F).sqlite`.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("gallery", help="list, show, remove, rename, export, import, verify, back up "
                                   "enrolled people", description=HELP,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--gallery", metavar="PATH", type=Path,
                        help="gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite)")
    common.add_argument("--key", metavar="PATH", type=Path,
                        help="key file (default: gallery.key in $EDGE_VERIFY_HOME)")
    common.add_argument("--token", metavar="T",
                        help="admin token for changes (default: $EDGE_VERIFY_ADMIN_TOKEN)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def action(name, handler, help_text, description=None):
        sub = actions.add_parser(name, parents=[common], help=help_text, description=description or help_text)
        sub.set_defaults(func=handler)
        return sub

    action("list", run_list, "enrolled people and how many templates each has "
           "(--json: a list of {name, templates, created_at})")
    show = action("show", run_show, "one person's templates (ids, dates, quality notes; never the templates), or "
                  "without NAME the gallery's summary with the 1:N threshold for its current size")
    show.add_argument("name", metavar="NAME", nargs="?")
    remove = action("remove", run_remove, "erase a person and every template of theirs (admin token)",
                    "Erase a person and all their templates (for example on a request under GDPR or BIPA). The "
                    "erased rows are overwritten on disk. The audit log names people only by number (person #N), "
                    "so their name goes with them; the events file and its rotated files are rewritten with that "
                    "number instead of the name, and the face crops of their events are deleted (journald keeps "
                    "its own copy until its retention ends). Says how many templates were erased.")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--events", metavar="FILE", type=Path,
                        help="the daemon's events file (default: [events] file of /etc/edge-verify/config.toml)")
    rename = action("rename", run_rename, "rename a person (admin token)")
    rename.add_argument("old", metavar="OLD")
    rename.add_argument("new", metavar="NEW")
    export = action("export", run_export, "write every person into an encrypted bundle (admin token)",
                    "Write every person and template into one encrypted bundle, sealed with this gallery's key. "
                    "Importing it on another kiosk needs this key (--bundle-key there).")
    export.add_argument("file", metavar="FILE", type=Path)
    export.add_argument("--force", action="store_true", help="replace FILE if it is an earlier bundle or backup")
    importing = action("import", run_import, "merge a bundle or a backup into the gallery (admin token)",
                       "Merge the people of a bundle (from `gallery export`) or a backup (from `gallery backup`) "
                       "into the gallery, creating it if it does not exist (this is how a damaged gallery is "
                       "restored). All or nothing: a name enrolled in both stops the import.")
    importing.add_argument("file", metavar="FILE", type=Path)
    importing.add_argument("--bundle-key", metavar="PATH", type=Path,
                           help="key FILE was sealed with, when it comes from another kiosk (default: --key)")
    action("verify", run_verify, "check the file's integrity, the key, every template and the audit chain",
           "Check the gallery file (PRAGMA integrity_check), that the key fits and every template "
           "authenticates, and that the audit log's hash chain is intact and still holds the record of "
           "the last change. Exits 1 when any check fails.")
    action("acknowledge-break", run_acknowledge, "accept the reported breaks of the audit trail (admin token)",
           "A break of the audit trail (records cut, the log deleted, replaced or edited) is recorded at the next "
           "change, the log as found is kept beside it (gallery.audit.jsonl.broken-TIME), and `gallery verify`, the "
           "selftest and the daemon report it until an admin has looked into it and runs this. The breaks stay in "
           "the log; only the report stops.")
    backup = action("backup", run_backup, "copy the gallery safely while it is in use (admin token)",
                    "Copy the gallery with SQLite's online backup: consistent even while the daemon reads it. "
                    "The copy is encrypted with the same key; restore it with `gallery import FILE`. It holds "
                    "everyone's templates, so it needs the admin token.")
    backup.add_argument("file", metavar="FILE", type=Path)
    backup.add_argument("--force", action="store_true", help="replace FILE if it is an earlier backup or bundle")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def gallery_file(args) -> Path:
    return args.gallery if args.gallery is not None else paths.gallery_path()


def open_existing(args):
    return open_gallery(gallery_file(args), args.key)


def authorise(args) -> str:
    """Check the admin token (waits and lockout after wrong ones); returns the actor for the audit log."""
    return check_token(gallery_file(args), token_from(args.token), args.key)


def run_list(args) -> int:
    path = gallery_file(args)
    if not path.exists():
        print(f"edge-verify: no gallery at {path} yet: nobody is enrolled", file=sys.stderr)
        people = []
    else:
        with open_existing(args) as gallery:
            people = gallery.list_people()
    if args.json:
        print(json.dumps(people, indent=2))
        return 0
    for person in people:
        print(f"{person['name']:<40} {person['templates']:>4} templates   enrolled {person['created_at']}")
    print(f"{len(people)} people, {sum(person['templates'] for person in people)} templates")
    return 0


def run_show(args) -> int:
    with open_existing(args) as gallery:
        data = gallery.show(args.name) if args.name else gallery.summary()
        if args.name:
            data["coverage"] = door_coverage(gallery, data)
    if not args.name:
        data["threshold_1n"] = openset_summary(data["templates"], data["model"])
        data["liveness"] = liveness_summary()
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.name:
        print(f"{data['name']} ({data['person']} in the audit log): {len(data['templates'])} templates, "
              f"enrolled {data['created_at']}")
        for template in data["templates"]:
            quality = json.dumps(template["quality"]) if template["quality"] is not None else "-"
            print(f"  template {template['id']:>6}  {template['model']} {template['dim']}-d  "
                  f"{template['created_at']}  quality {quality}")
        print(describe(data["coverage"]))
    else:
        threshold = data.pop("threshold_1n")
        liveness = data.pop("liveness")
        for key, value in data.items():
            print(f"{key:<12} {value}")
        print(f"{'threshold':<12} {describe_threshold(threshold)}")
        print(f"{'liveness':<12} {describe_liveness(liveness)}")
    return 0


def door_coverage(gallery, shown: dict) -> dict:
    """How well one person's templates cover them (edge.enroll.coverage), at the door's threshold."""
    loaded = gallery.load_matrix()
    door, cohort = door_figures(len(loaded[2]), gallery.summary()["model"])
    return person_coverage(gallery, shown, door["threshold"], loaded, cohort)


def openset_summary(n_templates: int, model: str | None) -> dict:
    """The threshold the kiosk decides with for this gallery's size: the daemon's rule (door_threshold, for
    the combined probes it judges) with its [decision] settings (/etc/edge-verify/config.toml when it
    exists), on the default fp32 engine's figures."""
    return door_figures(n_templates, model)[0]


def door_figures(n_templates: int, model: str | None) -> tuple:
    """(:func:`openset_summary`'s summary, the cohort the door adjusts combined probes with or None), from
    one reading of the engine's manifest; a manifest that cannot give them (a malformed cohort included, which
    the daemon refuses too) leaves the threshold unknown."""
    engine = engine_path(EMBEDDING, "fp32", "onnxruntime")
    try:
        decision = config.from_command_line(None).decision
        manifest = read_manifest(engine)
        choice = door_threshold(manifest, n_templates, decision["threshold"], decision["stranger_rate"], combined=True)
        cohort = combined_cohort(manifest)
    except EdgeVerifyError as error:
        return {"threshold": None, "n_templates": n_templates, "note": f"unknown: {error}"}, None
    # The rule counts at least one template; the summary says how many there really are.
    summary = {**choice.as_dict(), "n_templates": n_templates, "engine": str(engine)}
    # Templates are stored under the embedding space (model and normalisation), not the bare model name.
    if model is not None and embedding_space(manifest) != model:
        summary["note"] = (f"the gallery holds {model} templates but the engine gives {embedding_space(manifest)}; "
                           "enroll everyone again with this engine")
    return summary, cohort


def liveness_summary() -> dict:
    """The liveness cues the door runs with its settings (/etc/edge-verify/config.toml when it exists)."""
    try:
        return liveness_status(config.from_command_line(None))
    except EdgeVerifyError as error:
        return {"enabled": False, "cues": [], "lines": [], "warning": f"unknown: {error}"}


def describe_liveness(summary: dict) -> str:
    if summary["enabled"]:
        return f"cues {', '.join(summary['cues'])}" + "".join(f"\n{'':<12} {line}" for line in summary["lines"])
    return f"WARNING {summary['warning']}"


def describe_threshold(summary: dict) -> str:
    if summary["threshold"] is None:
        return summary["note"]
    if summary["n_templates"] == 0:
        return "none yet: no templates, so nobody can be recognised (enroll people with `edge-verify enroll`)"
    text = (f"{summary['threshold']:.4f} for 1:N with {summary['n_templates']} templates "
            f"(rule: {summary['rule']}, target {summary['target_rate']:g} strangers per attempt; "
            f"1:1 threshold {summary['verification_threshold']:g})")
    if summary.get("expected_stranger_rate") is not None:
        text += f"; expected strangers let in {summary['expected_stranger_rate']:.2g}"
    return text + (f"\n{'':<12} note: {summary['note']}" if summary.get("note") else "")


def run_remove(args) -> int:
    actor = authorise(args)
    with open_existing(args) as gallery:
        number = gallery.person_ref(args.name)
        count = gallery.remove_person(args.name, actor)
    events = args.events or paths.installed("file", section="events")
    rewritten, crops = forget_person(events, normal_name(args.name), number) if events is not None else (0, 0)
    text = f"removed {args.name}: erased {count} template{'s' if count != 1 else ''}"
    if events is not None:
        text += f"; {rewritten} event{'s' if rewritten != 1 else ''} in {events} now name {number}, {crops} face " \
                f"crop{'s' if crops != 1 else ''} deleted"
    _report(args, {"name": args.name, "person": number, "templates_erased": count, "events_rewritten": rewritten,
                   "face_crops_deleted": crops}, text)
    return 0


def run_rename(args) -> int:
    actor = authorise(args)
    with open_existing(args) as gallery:
        gallery.rename(args.old, args.new, actor)
    _report(args, {"old": args.old, "new": args.new}, f"renamed {args.old} to {args.new}")
    return 0


def run_export(args) -> int:
    actor = authorise(args)
    with open_existing(args) as gallery:
        counts = gallery.export(args.file, actor, overwrite=args.force)
    _report(args, {"file": str(args.file), **counts},
            f"exported {counts['people']} people ({counts['templates']} templates) to {args.file}")
    return 0


def run_import(args) -> int:
    actor = authorise(args)
    bundle_key = load_key(args.bundle_key) if args.bundle_key else None
    counts = import_into(gallery_file(args), args.key, args.file, actor, bundle_key=bundle_key)
    _report(args, {"file": str(args.file), **counts},
            f"imported {counts['people']} people ({counts['templates']} templates) from {args.file}")
    return 0


def run_verify(args) -> int:
    checks = verify_gallery(gallery_file(args), args.key or default_key_path())
    ok = all(check.ok for check in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [check._asdict() for check in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<12} {check.detail}")
    return 0 if ok else 1


def run_acknowledge(args) -> int:
    actor = authorise(args)
    with open_existing(args) as gallery:
        breaks = gallery.acknowledge_audit_breaks(actor)
    kept = ", ".join(str(record["details"].get("kept_as")) for record in breaks)
    _report(args, {"acknowledged": [record["seq"] for record in breaks]},
            f"acknowledged {len(breaks)} break{'s' if len(breaks) != 1 else ''} of the audit trail"
            + (f" (logs kept as {kept})" if kept else ""))
    return 0


def run_backup(args) -> int:
    actor = authorise(args)
    with open_existing(args) as gallery:
        target = gallery.backup(args.file, actor, overwrite=args.force)
    _report(args, {"file": str(target)}, f"backed up {gallery.path} to {target}")
    return 0


def _report(args, data: dict, text: str) -> None:
    print(json.dumps(data, indent=2) if args.json else text)
