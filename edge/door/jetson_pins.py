"""The 40-pin header of Jetson developer kits: which GPIO line each pin is.

Pure data and lookups (no hardware access), so CI can test pin names. Each
GPIO pin answers to every name below, which is what lets one config work on
the Jetson factory and on gpiozero's MockFactory (a Raspberry Pi board):

* ``"BOARD11"`` and ``"J12:11"`` (physical pin, optionally with the header name),
* the kernel line name, e.g. ``"PR.04"`` (tegra186-gpio driver naming),
* ``("tegra234-gpio", 112)``: chip label and line offset,
* the Raspberry-Pi-compatible BCM names ``"GPIO17"``, ``"BCM17"``, ``17``, ``"17"``
  (Jetson.GPIO's BCM numbering follows the Pi header positions).

Prefer ``BOARDnn`` in configs. Line offsets and names come from NVIDIA's
Jetson.GPIO pin tables for the developer-kit carriers; custom carriers may differ.
The original Jetson Nano (L4T 32, kernel 4.9) is not listed: its kernel lacks
the GPIO character-device uAPI v2 that libgpiod 2 needs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Optional

from gpiozero.pins import BoardInfo, HeaderInfo, PinInfo

from edge.exc import DoorError

# Physical pin -> BCM number, identical on every Jetson dev kit and on the Pi.
BCM = {
    7: 4, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10, 21: 9, 22: 25, 23: 11,
    24: 8, 26: 7, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19, 36: 16, 37: 26, 38: 20, 40: 21,
}

# Pins that are not GPIO (same places as on the Pi header).
FIXED = {
    1: "3V3", 2: "5V", 3: "I2C_SDA", 4: "5V", 5: "I2C_SCL", 6: "GND", 8: "UART_TX", 9: "GND",
    10: "UART_RX", 14: "GND", 17: "3V3", 20: "GND", 25: "GND", 27: "I2C_SDA", 28: "I2C_SCL",
    30: "GND", 34: "GND", 39: "GND",
}

# "pin offset line" per GPIO pin; an offset prefixed with "a" is on the always-on (aon) chip.
_ORIN_NX = """
7 144 PAC.06  11 112 PR.04  12 50 PH.07  13 122 PY.00  15 85 PN.01  16 126 PY.04
18 125 PY.03  19 135 PZ.05  21 134 PZ.04  22 123 PY.01  23 133 PZ.03  24 136 PZ.06
26 137 PZ.07  29 105 PQ.05  31 106 PQ.06  32 41 PG.06   33 43 PH.00   35 53 PI.02
36 113 PR.05  37 124 PY.02  38 52 PI.01   40 51 PI.00
"""
_AGX_ORIN = """
7 106 PQ.06   11 112 PR.04  12 50 PH.07   13 108 PR.00  15 85 PN.01   16 a9 PBB.01
18 43 PH.00   19 135 PZ.05  21 134 PZ.04  22 96 PP.04   23 133 PZ.03  24 136 PZ.06
26 137 PZ.07  29 a1 PAA.01  31 a0 PAA.00  32 a8 PBB.00  33 a2 PAA.02  35 53 PI.02
36 113 PR.05  37 a3 PAA.03  38 52 PI.01   40 51 PI.00
"""
_XAVIER_NX = """
7 118 PS.04   11 112 PR.04  12 127 PT.05  13 149 PY.00  15 a16 PCC.04 16 153 PY.04
18 152 PY.03  19 162 PZ.05  21 161 PZ.04  22 150 PY.01  23 160 PZ.03  24 163 PZ.06
26 164 PZ.07  29 105 PQ.05  31 106 PQ.06  32 108 PR.00  33 84 PN.01   35 130 PU.00
36 113 PR.05  37 151 PY.02  38 129 PT.07  40 128 PT.06
"""
_AGX_XAVIER = """
7 106 PQ.06   11 112 PR.04  12 51 PH.07   13 108 PR.00  15 84 PN.01   16 a8 PBB.00
18 44 PH.00   19 162 PZ.05  21 161 PZ.04  22 101 PQ.01  23 160 PZ.03  24 163 PZ.06
26 164 PZ.07  29 a3 PAA.03  31 a2 PAA.02  32 a9 PBB.01  33 a0 PAA.00  35 54 PI.02
36 113 PR.05  37 a1 PAA.01  38 53 PI.01   40 52 PI.00
"""


@dataclass(frozen=True)
class Board:
    key: str
    model: str
    soc: str
    header: str
    table: str
    compatible: tuple  # substrings of /proc/device-tree/compatible that identify it

    @property
    def chip_labels(self) -> dict:
        return {"main": f"{self.soc}-gpio", "aon": f"{self.soc}-gpio-aon"}


BOARDS = MappingProxyType({
    "orin-nx": Board("orin-nx", "Jetson Orin NX / Orin Nano", "tegra234", "J12", _ORIN_NX, ("p3767-",)),
    "agx-orin": Board("agx-orin", "Jetson AGX Orin", "tegra234", "J30", _AGX_ORIN, ("p3701-",)),
    "xavier-nx": Board("xavier-nx", "Jetson Xavier NX", "tegra194", "J12", _XAVIER_NX, ("p3668-",)),
    "agx-xavier": Board(
        "agx-xavier", "Jetson AGX Xavier", "tegra194", "J30", _AGX_XAVIER, ("p2888-", "p2972-", "jetson-xavier")
    ),
})

# Jetson.GPIO's model names (its JETSON_MODEL_NAME variable) and friendly aliases.
ALIASES = {
    "orin-nano": "orin-nx", "jetson_orin_nx": "orin-nx", "jetson_orin_nano": "orin-nx",
    "jetson_orin": "agx-orin", "jetson_nx": "xavier-nx", "jetson_xavier": "agx-xavier",
    "clara_agx_xavier": "agx-xavier",
}
UNSUPPORTED = {
    "p3448-": "the original Jetson Nano (L4T 32, kernel 4.9) has no GPIO uAPI v2, which libgpiod 2 needs",
    "p3450-": "the original Jetson Nano (L4T 32, kernel 4.9) has no GPIO uAPI v2, which libgpiod 2 needs",
    "p3310-": "Jetson TX2 boards run L4T 32 (kernel 4.9), which has no GPIO uAPI v2",
    "p3636-": "Jetson TX2 NX boards run L4T 32 (kernel 4.9), which has no GPIO uAPI v2",
}
COMPATIBLE_PATHS = ("/proc/device-tree/compatible", "/sys/firmware/devicetree/base/compatible")
MODEL_ENV = "JETSON_MODEL_NAME"


def board_for(name: str) -> Board:
    key = name.strip().lower().replace(" ", "-")
    key = ALIASES.get(key, key)
    if key not in BOARDS:
        known = ", ".join(sorted(BOARDS))
        raise DoorError(f"unknown Jetson model {name!r}; known: {known} (or Jetson.GPIO's JETSON_* names)")
    return BOARDS[key]


def detect_board(compatible: Optional[bytes] = None) -> Board:
    """The board from $JETSON_MODEL_NAME, else from the device tree's compatible list."""
    explicit = os.environ.get(MODEL_ENV)
    if explicit:
        return board_for(explicit)
    if compatible is None:
        compatible = _read_compatible()
    entries = [entry for entry in compatible.decode("ascii", "replace").split("\0") if entry]
    for board in BOARDS.values():
        if any(marker in entry for entry in entries for marker in board.compatible):
            return board
    for marker, why in UNSUPPORTED.items():
        if any(marker in entry for entry in entries):
            raise DoorError(f"this board is not supported by the jetson pin factory: {why}")
    raise DoorError(
        f"not a supported Jetson board (device tree says {', '.join(entries) or 'nothing'}); "
        f"set {MODEL_ENV} to one of {', '.join(sorted(BOARDS))} if this is a Jetson with a dev-kit header"
    )


def _read_compatible() -> bytes:
    for path in COMPATIBLE_PATHS:
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except OSError:
            continue
    raise DoorError(
        "cannot read the device tree (/proc/device-tree/compatible): this is not a Jetson, "
        f"or the container does not expose it; set {MODEL_ENV} (e.g. orin-nx) to name the board"
    )


@dataclass(frozen=True)
class Line:
    """Where a header pin lives: the chip (by label) and the line offset in it."""

    chip_label: str
    offset: int
    name: str


@lru_cache(maxsize=None)
def lines(board: Board) -> dict:
    """{physical pin: Line} for the board's GPIO pins."""
    fields = board.table.split()
    result = {}
    for pin, offset, name in zip(fields[0::3], fields[1::3], fields[2::3]):
        chip = "aon" if offset.startswith("a") else "main"
        result[int(pin)] = Line(board.chip_labels[chip], int(offset.lstrip("a")), name)
    return result


def _pin_info(board: Board, number: int) -> PinInfo:
    row, col = (number + 1) // 2, 2 - number % 2
    line = lines(board).get(number)
    if line is None:
        function = FIXED[number]
        return PinInfo(number, function, frozenset({function, f"BOARD{number}", f"{board.header}:{number}"}),
                       "", row, col, {})
    bcm = BCM[number]
    names = frozenset({
        f"BOARD{number}", f"{board.header}:{number}", line.name, (line.chip_label, line.offset),
        f"GPIO{bcm}", f"BCM{bcm}", bcm, str(bcm),
    })
    return PinInfo(number, f"BOARD{number}", names, "", row, col, {"gpio": line.name})


@lru_cache(maxsize=None)
def board_info(board: Board) -> BoardInfo:
    pins = {number: _pin_info(board, number) for number in range(1, 41)}
    header = HeaderInfo(name=board.header, rows=20, columns=2, pins=pins)
    return BoardInfo(
        revision="unknown", model=board.model, pcb_revision="unknown", released="", soc=board.soc.capitalize(),
        manufacturer="NVIDIA", memory=0, storage="", usb=0, usb3=0, ethernet=1, eth_speed=1000, wifi=False,
        bluetooth=False, csi=0, dsi=0, headers={board.header: header}, board="",
    )


def line_for(board: Board, name) -> Line:
    """The GPIO line a pin name refers to, or DoorError saying why not."""
    info = board_info(board)
    for _header, pin in info.find_pin(name):
        if "gpio" not in pin.interfaces:
            raise DoorError(f"pin {name!r} is {pin.name} (pin {pin.number}), not a GPIO")
        return lines(board)[pin.number]
    raise DoorError(f"{name!r} is not a pin of the {board.model} header; use names like BOARD11 or {board.header}:11")
