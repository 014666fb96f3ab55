"""The daemon's settings: one table, read from a TOML file and from flags.

Every setting is an :class:`Option` in ``OPTIONS``; the same table makes the
``edge-verify run`` flags, reads ``/etc/edge-verify/config.toml`` (layout:
``systemd/config.toml``) and checks the values, so a key can never exist in one
place and be missing in the other. Precedence: built-in default < config file <
flag. Unknown sections or keys are refused (a typo must not silently leave a
default in force), and every problem is one ConfigError line naming the key and
the file.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from edge import paths
from edge.daemon.decision import DEFAULT_K, DEFAULT_MIN_FRAMES, DEFAULT_N
from edge.daemon.tracking import DEFAULT_WINDOW as COMBINE_WINDOW
from edge.door import KINDS as DOOR_KINDS
from edge.door import validate_pulse
from edge.exc import ConfigError, EdgeVerifyError
from edge.liveness.judge import parse_cues
from edge.models.registry import BACKENDS, PRECISIONS
from edge.pipeline import SEARCH_EVERY
from edge.sources import parse_uri

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_PATH = paths.INSTALLED_CONFIG
MAX_COMBINE = 100  # frames one face's probe may combine


@dataclass(frozen=True)
class Option:
    section: str
    key: str
    kind: str  # "str", "float", "int", "bool", "rate" (text or a number)
    default: Any
    help: str
    flag: Optional[str] = None  # None: --<section>-<key> with dashes
    optional: bool = False  # None is a valid value (meaning: automatic / unset)
    negative_flag: Optional[str] = None  # bool options: the flag that sets False

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def dest(self) -> str:
        return f"{self.section}__{self.key}"

    @property
    def flag_name(self) -> str:
        return self.flag or "--" + f"{self.section}-{self.key}".replace("_", "-")


OPTIONS = (
    Option("source", "uri", "str", "csi://0", "camera or clip: csi://0, v4l2:///dev/video0, rtsp://..., "
           "file://clip.avi, dir://photos", flag="--source"),
    Option("source", "timeout_s", "float", 2.0, "longest wait for one frame before a read reports a timeout (s)",
           flag="--source-timeout"),
    Option("source", "reconnect_initial_s", "float", 0.5, "first wait before reopening a lost camera (s); "
           "doubles per attempt", flag="--reconnect-initial"),
    Option("source", "reconnect_max_s", "float", 30.0, "longest wait between reconnect attempts (s)",
           flag="--reconnect-max"),
    Option("source", "reconnect_max_attempts", "int", None, "give up after this many failed reconnects in a row "
           "(default: live cameras never give up; files: 3)", flag="--reconnect-attempts", optional=True),
    Option("source", "rate", "rate", None, "file:// and dir:// only: 'realtime' or frames per second "
           "(default: as fast as possible)", flag="--rate", optional=True),
    Option("door", "kind", "str", "relay", f"what drives the lock: {', '.join(DOOR_KINDS)} (relay: a relay on "
           "GPIO pins, the settings below)", flag="--door-kind"),
    Option("door", "pin", "str", "BOARD32", "relay driver pin, a gpiozero pin name (BOARD32 = header pin 32)",
           flag="--pin"),
    Option("door", "active_high", "bool", True, "the relay is energised while the pin is HIGH (default); "
           "--active-low for low-level-trigger relay modules", flag="--active-high", negative_flag="--active-low"),
    Option("door", "pulse_s", "float", 3.0, "how long one unlock keeps the door open, 1 to 10 s", flag="--pulse"),
    Option("door", "sensor_pin", "str", None, "door contact input pin (closed = door shut)", flag="--sensor-pin",
           optional=True),
    Option("door", "exit_pin", "str", None, "request-to-exit button input pin", flag="--exit-pin", optional=True),
    Option("decision", "threshold", "float", None, "match distance threshold (default: the 1:N threshold computed "
           "from the engine manifest for the gallery's size)", flag="--threshold", optional=True),
    Option("decision", "allow_loose_threshold", "bool", False, "accept a threshold looser than the model's 1:1 "
           "threshold, which lets strangers in as somebody (refused by default)", flag="--allow-loose-threshold",
           negative_flag="--no-allow-loose-threshold"),
    Option("decision", "min_frames", "int", DEFAULT_MIN_FRAMES, "frames of one face combined before it may unlock "
           "(the face is followed across frames and its frames' embeddings averaged)", flag="--min-frames"),
    Option("decision", "combine_frames", "int", COMBINE_WINDOW, "how many of a face's latest frames its probe "
           "combines", flag="--combine-frames"),
    Option("decision", "k", "int", DEFAULT_K, "decisions on one face that must name the same person ...", flag="--k"),
    Option("decision", "n", "int", DEFAULT_N, "... among its last N decisions", flag="--n"),
    Option("decision", "min_face_px", "int", 80, "ignore faces whose box is smaller than this (pixels); the detector does not "
           "search for faces under 0.6x this",
           flag="--min-face"),
    Option("decision", "cooldown_s", "float", 5.0, "after an unlock, the same person cannot unlock again for "
           "this long (s)", flag="--cooldown"),
    Option("decision", "stranger_rate", "float", 1e-3, "1:N rule: expected share of strangers let in per "
           "attempt, kept at or below this", flag="--stranger-rate"),
    Option("decision", "liveness", "str", "auto", "print/screen check before an unlock: 'auto' runs the liveness "
           "cues whenever a liveness model or an attributes engine is there (and warns at start when none is), "
           "'required' refuses to start without one, 'off' never checks", flag="--liveness"),
    Option("liveness", "cues", "str", "auto", "liveness cues to run: 'auto' (every cue whose model is there) or a "
           "comma-separated list of texture, cnn, context, motion, colour; a listed cue without its model refuses to start",
           flag="--liveness-cues"),
    Option("liveness", "active", "bool", False, "active check for kiosks that can ask for a small head turn: a face "
           "is live only after the motion cue sees a head's parallax (off by default)", flag="--active-liveness",
           negative_flag="--no-active-liveness"),
    Option("engine", "path", "str", None, "embedding engine file (default: by --precision and --backend under "
           "$EDGE_VERIFY_HOME/models/engines)", flag="--engine", optional=True),
    Option("engine", "precision", "str", "fp32", f"embedding engine precision: {', '.join(PRECISIONS)}",
           flag="--precision"),
    Option("engine", "backend", "str", "onnxruntime", f"inference backend: {', '.join(BACKENDS)}", flag="--backend"),
    Option("engine", "threads", "int", None, "CPU threads per engine (default: half the CPU cores, at least 1: "
           "a helper thread runs part of each frame beside them)",
           flag="--threads", optional=True),
    Option("engine", "flip", "bool", True, "average each face with its mirror image (default; --no-flip is faster "
           "and slightly less accurate)", flag="--flip", negative_flag="--no-flip"),
    Option("engine", "search_every", "int", SEARCH_EVERY, "while the face of the frame before is found again near its box "
           "(about 10 ms cheaper a frame on a 2-core CPU), search the whole frame for faces only every this many "
           "frames, and before the door opens for a followed face; 1 searches every frame", flag="--search-every"),
    Option("gallery", "path", "str", None, "gallery file (default: $EDGE_VERIFY_HOME/gallery.sqlite)",
           flag="--gallery", optional=True),
    Option("gallery", "key", "str", None, "gallery key file (default: $EDGE_VERIFY_HOME/gallery.key)", flag="--key",
           optional=True),
    Option("gallery", "admin_token", "str", None, "the admin token's hash file, read by the enroll and gallery "
           "commands (the daemon does not use it; default: beside the gallery). An installed kiosk keeps it in "
           "/etc/edge-verify, out of the service user's reach", flag="--admin-token-file", optional=True),
    Option("gallery", "reload_s", "float", 1.0, "how often to look for gallery changes (s); changes apply "
           "without a restart", flag="--gallery-poll"),
    Option("events", "file", "str", None, "append one JSON line per decision to this file (rotated)",
           flag="--events", optional=True),
    Option("events", "stdout", "bool", True, "also print events on stdout (the journal)", flag="--events-stdout",
           negative_flag="--no-events-stdout"),
    Option("events", "max_bytes", "int", 10 * 1024 * 1024, "rotate the events file at this size (bytes)",
           flag="--events-max-bytes"),
    Option("events", "backups", "int", 5, "rotated events files to keep", flag="--events-backups"),
    Option("fleet", "state", "str", None, "the fleet agent's folder (edge-verify fleet run --state): events are "
           "spooled there for the hub and the site's offline policy is read from there (default: not in a fleet)",
           flag="--fleet-state", optional=True),
    Option("events", "store_faces", "bool", False, "save each decision's face crop next to the events file "
           "(privacy: off by default)", flag="--store-faces", negative_flag="--no-store-faces"),
    Option("events", "faces_kept", "int", 1000, "with store_faces: keep only this many newest face crops",
           flag="--faces-kept"),
    Option("console", "daemon_socket", "str", None, "the Unix socket on which the daemon shares its frames, faces "
           "and decisions with the console and `enroll --camera` (default: $EDGE_VERIFY_HOME/daemon.sock)",
           flag="--daemon-socket", optional=True),
    Option("console", "enabled", "bool", False, "serve the web console (`edge-verify console serve`); off by "
           "default", flag="--console", negative_flag="--no-console"),
    Option("console", "listen", "str", "127.0.0.1", "the console's address: a loopback address, or the address "
           "or name of one network interface (never all interfaces)", flag="--console-listen"),
    Option("console", "port", "int", 8443, "the console's TCP port (HTTPS)", flag="--console-port"),
    Option("console", "certificate", "str", None, "the console's TLS certificate (default: "
           "$EDGE_VERIFY_HOME/console/cert.pem, made by `edge-verify console init-cert`)",
           flag="--console-certificate", optional=True),
    Option("console", "private_key", "str", None, "its private key (default: $EDGE_VERIFY_HOME/console/key.pem)",
           flag="--console-private-key", optional=True),
    Option("console", "session_s", "float", 900.0, "a console login ends after this long without a request (s)",
           flag="--console-session"),
)

BY_NAME = {option.name: option for option in OPTIONS}
LIVENESS_MODES = ("auto", "required", "off")
SECTIONS = tuple(dict.fromkeys(option.section for option in OPTIONS))


class Settings(dict):
    """{"section.key": value} with attribute access by section: ``settings.door["pin"]``.

    ``origins`` says where each value that is not a built-in default came from;
    ``path`` is the config file read (None: built-in defaults and flags only)."""

    origins: dict
    path: Optional[Path] = None

    def __getattr__(self, section: str) -> dict:
        if section not in SECTIONS:
            raise AttributeError(section)
        return {key.split(".", 1)[1]: value for key, value in self.items() if key.startswith(section + ".")}


# -- reading ------------------------------------------------------------------------------------

def read_file(path: str | os.PathLike) -> dict:
    """{"section.key": raw value} from a TOML file, or ConfigError naming the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist (see systemd/config.toml for an example)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    values = {}
    for section, table in document.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise ConfigError(f"{path}: unknown section [{section}]; known: {', '.join(SECTIONS)}")
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in BY_NAME:
                known = ", ".join(option.key for option in OPTIONS if option.section == section)
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; known: {known}")
            values[name] = value
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; absent flags leave no attribute (argparse.SUPPRESS), so the file's value stays."""
    for section in SECTIONS:
        group = parser.add_argument_group(f"[{section}] settings")
        for option in (option for option in OPTIONS if option.section == section):
            label = f"[{section}] {option.key}"
            if option.kind == "bool":
                group.add_argument(option.flag_name, dest=option.dest, action="store_const", const=True,
                                   default=argparse.SUPPRESS, help=f"{option.help} ({label})")
                group.add_argument(option.negative_flag, dest=option.dest, action="store_const", const=False,
                                   default=argparse.SUPPRESS, help=f"the opposite of {option.flag_name}")
                continue
            default = "" if option.default is None else f"; default {option.default}"
            group.add_argument(option.flag_name, dest=option.dest, metavar=_metavar(option), type=str,
                               default=argparse.SUPPRESS, help=f"{option.help} ({label}{default})")


def _metavar(option: Option) -> str:
    if option.key.endswith("_s"):
        return "SECONDS"
    if option.kind in ("int", "float"):
        return "N" if option.kind == "int" else "X"
    return {"uri": "URI", "path": "FILE", "key": "FILE", "file": "FILE"}.get(option.key, option.key.upper())


def flag_values(args: argparse.Namespace) -> dict:
    """{"section.key": text or bool} for the flags actually given."""
    given = vars(args)
    return {option.name: given[option.dest] for option in OPTIONS if option.dest in given}


def resolve(file_values: dict, flags: dict, origin: str = "the config file") -> Settings:
    """Defaults, then the file, then flags; every value converted and checked."""
    settings = Settings({option.name: option.default for option in OPTIONS})
    settings.origins = {}
    for name, raw in file_values.items():
        settings[name] = convert(BY_NAME[name], raw, origin, from_text=False)
        settings.origins[name] = origin
    for name, raw in flags.items():
        settings[name] = convert(BY_NAME[name], raw, "the command line", from_text=True)
        settings.origins[name] = "the command line"
    validate(settings)
    return settings


def load(path: str | os.PathLike | None = None, flags: Optional[dict] = None) -> Settings:
    """Settings from ``path`` (None: no file) and ``flags``."""
    file_values = read_file(path) if path is not None else {}
    settings = resolve(file_values, flags or {}, origin=str(path) if path is not None else "the config file")
    settings.path = Path(path) if path is not None else None
    return settings


def default_config_path() -> Optional[Path]:
    """/etc/edge-verify/config.toml when it exists (the service's file), else None (built-in defaults)."""
    return DEFAULT_PATH if DEFAULT_PATH.is_file() else None


def from_command_line(config_path: str | os.PathLike | None, no_config: bool = False,
                      flags: Optional[dict] = None) -> Settings:
    """The settings a command runs with: the file ``config_path`` (--config), else the service's
    file when it exists unless ``no_config`` (--no-config), then ``flags``."""
    if config_path is not None and no_config:
        raise ConfigError("--config and --no-config contradict each other; give one")
    if config_path is not None:
        path = Path(config_path).expanduser()
    else:
        path = None if no_config else default_config_path()
    return load(path, flags)


# -- converting ---------------------------------------------------------------------------------

def convert(option: Option, raw, origin: str, from_text: bool):
    """The value of ``option`` from a TOML value or a flag's text, or ConfigError."""
    where = f"{option.flag_name}" if from_text and option.kind != "bool" else f"[{option.section}] {option.key}"
    if raw is None or (from_text and option.optional and str(raw).strip().lower() in ("", "none", "auto")):
        if option.optional:
            return None
        raise ConfigError(f"{where} needs a value ({origin})")
    converter: Callable = {"str": _to_str, "float": _to_float, "int": _to_int, "bool": _to_bool,
                           "rate": _to_rate}[option.kind]
    try:
        return converter(raw, from_text)
    except ValueError as error:
        raise ConfigError(f"{where} {error}, got {raw!r} ({origin})") from None


def _to_str(raw, from_text: bool) -> str:
    # From the file only a TOML string: `file = 5` or `pin = 11` is a mistake to point out (a file
    # named "5", a pin number where a pin name is meant), not to take as text.
    if not isinstance(raw, str):
        raise ValueError("must be text in quotes")
    return raw


def _to_rate(raw, from_text: bool):
    """[source] rate: "realtime" or frames per second (checked by _rate)."""
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ValueError("must be \"realtime\" or a number of frames per second")
    return raw


def _to_float(raw, from_text: bool) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)) or (isinstance(raw, str) and not from_text):
        raise ValueError("must be a number")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number") from None
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


def _to_int(raw, from_text: bool) -> int:
    if isinstance(raw, bool) or isinstance(raw, float) or (isinstance(raw, str) and not from_text):
        raise ValueError("must be a whole number")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None


def _to_bool(raw, from_text: bool) -> bool:
    if isinstance(raw, bool):
        return raw
    raise ValueError("must be true or false")


# -- checking -----------------------------------------------------------------------------------

def _check_source(settings: Settings) -> None:
    _at_least(settings, "source.timeout_s", 0.0, strict=True)
    _at_least(settings, "source.reconnect_initial_s", 0.0)
    _at_least(settings, "source.reconnect_max_s", settings["source.reconnect_initial_s"])
    if settings["source.reconnect_max_attempts"] is not None:
        _at_least(settings, "source.reconnect_max_attempts", 0)


def _check_pins(settings: Settings) -> None:
    names = ("door.pin", "door.sensor_pin", "door.exit_pin")
    for name in names:
        if settings[name] is not None and not str(settings[name]).strip():
            raise ConfigError(f"[door] {name.split('.')[1]} must name a pin, e.g. BOARD11")
    pins = [settings[name] for name in names if settings[name] is not None]
    if len(set(pins)) != len(pins):
        raise ConfigError(f"[door] pin, sensor_pin and exit_pin must be different pins, got {', '.join(pins)}")


def _check_agreement(settings: Settings) -> None:
    _at_least(settings, "decision.k", 1)
    _at_least(settings, "decision.n", 1)
    _at_least(settings, "decision.min_frames", 1)
    _at_least(settings, "decision.combine_frames", 1)
    if settings["decision.k"] > settings["decision.n"]:
        raise ConfigError(f"[decision] k ({settings['decision.k']}) must be at most n ({settings['decision.n']}): "
                          "k of the last n decisions must agree")
    if settings["decision.n"] > 100:
        raise ConfigError(f"[decision] n must be at most 100 frames, got {settings['decision.n']}")
    if settings["decision.combine_frames"] > MAX_COMBINE:
        raise ConfigError(f"[decision] combine_frames must be at most {MAX_COMBINE}, got "
                          f"{settings['decision.combine_frames']}")
    if settings["decision.min_frames"] > settings["decision.combine_frames"]:
        raise ConfigError(f"[decision] min_frames ({settings['decision.min_frames']}) must be at most "
                          f"combine_frames ({settings['decision.combine_frames']}): a probe never holds more")


def _check_decision(settings: Settings) -> None:
    if settings["decision.threshold"] is not None:
        _at_least(settings, "decision.threshold", 0.0, strict=True)
    _at_least(settings, "decision.min_face_px", 0)
    _at_least(settings, "engine.search_every", 1)
    _at_least(settings, "decision.cooldown_s", 0.0)
    _choice(settings, "decision.liveness", LIVENESS_MODES)
    rate = settings["decision.stranger_rate"]
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"[decision] stranger_rate must be between 0 and 1 (e.g. 0.001), got {rate:g}")


def _check_liveness(settings: Settings) -> None:
    try:
        cues = parse_cues(settings["liveness.cues"])
    except ConfigError as error:
        raise ConfigError(f"[liveness] cues: {error}") from None
    if settings["liveness.active"] and cues is not None and "motion" not in cues:
        raise ConfigError("[liveness] active needs the motion cue: add motion to [liveness] cues")


def _check_engine(settings: Settings) -> None:
    _choice(settings, "engine.precision", PRECISIONS)
    _choice(settings, "engine.backend", BACKENDS)
    if settings["engine.threads"] is not None:
        _at_least(settings, "engine.threads", 1)


def _check_events(settings: Settings) -> None:
    _at_least(settings, "events.max_bytes", 0)
    _at_least(settings, "events.backups", 1)
    _at_least(settings, "events.faces_kept", 1)
    if settings["events.store_faces"] and settings["events.file"] is None:
        raise ConfigError("[events] store_faces needs an events file: face crops are saved next to it")


def _check_console(settings: Settings) -> None:
    _at_least(settings, "console.port", 1)
    if settings["console.port"] > 65535:
        raise ConfigError(f"[console] port must be at most 65535, got {settings['console.port']}")
    _at_least(settings, "console.session_s", 0.0, strict=True)
    if not str(settings["console.listen"]).strip():
        raise ConfigError("[console] listen must name an address, e.g. 127.0.0.1")


def _check_pulse(settings: Settings) -> None:
    settings["door.pulse_s"] = validate_pulse(settings["door.pulse_s"])


def _check_rate(settings: Settings) -> None:
    settings["source.rate"] = _rate(settings["source.rate"])


def _check_uri(settings: Settings) -> None:
    try:
        parse_uri(settings["source.uri"])
    except EdgeVerifyError as error:
        raise ConfigError(f"[source] uri: {error}") from None


# Each check with the settings it reads, so an error can say where those came from.
CHECKS = (
    (("source.timeout_s", "source.reconnect_initial_s", "source.reconnect_max_s", "source.reconnect_max_attempts"),
     _check_source),
    (("source.rate",), _check_rate),
    (("source.uri",), _check_uri),
    (("door.kind",), lambda settings: _choice(settings, "door.kind", tuple(DOOR_KINDS))),
    (("door.pin", "door.sensor_pin", "door.exit_pin"), _check_pins),
    (("door.pulse_s",), _check_pulse),
    (("decision.k", "decision.n", "decision.min_frames", "decision.combine_frames"), _check_agreement),
    (("decision.threshold", "decision.min_face_px", "decision.cooldown_s", "decision.stranger_rate",
      "decision.liveness"), _check_decision),
    (("liveness.cues", "liveness.active"), _check_liveness),
    (("engine.precision", "engine.backend", "engine.threads"), _check_engine),
    (("gallery.reload_s",), lambda settings: _at_least(settings, "gallery.reload_s", 0.0, strict=True)),
    (("events.max_bytes", "events.backups", "events.store_faces", "events.file", "events.faces_kept"),
     _check_events),
    (("console.port", "console.session_s", "console.listen"), _check_console),
)


def validate(settings: Settings) -> None:
    """ConfigError for the first value that cannot work, saying which, why, and where it was set."""
    for names, check in CHECKS:
        try:
            check(settings)
        except ConfigError as error:
            raise ConfigError(f"{error} ({_origin(settings, names)})") from None


def _origin(settings: Settings, names) -> str:
    origins = getattr(settings, "origins", {})
    places = list(dict.fromkeys(origins.get(name, "built-in default") for name in names))
    given = [place for place in places if place != "built-in default"]
    return " and ".join(given or places)


def _at_least(settings: Settings, name: str, low, strict: bool = False) -> None:
    value = settings[name]
    if value < low or (strict and value == low):
        section, key = name.split(".", 1)
        relation = "greater than" if strict else "at least"
        raise ConfigError(f"[{section}] {key} must be {relation} {low:g}, got {value:g}")


def _choice(settings: Settings, name: str, choices) -> None:
    if settings[name] not in choices:
        section, key = name.split(".", 1)
        raise ConfigError(f"[{section}] {key} must be one of {', '.join(choices)}, got {settings[name]!r}")


def _rate(value):
    if value is None or value == "realtime":
        return value
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"[source] rate must be \"realtime\" or frames per second, got {value!r}") from None
    if not math.isfinite(rate) or rate <= 0:
        raise ConfigError(f"[source] rate must be a positive number of frames per second, got {value!r}")
    return rate
