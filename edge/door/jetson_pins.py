"""The 40-pin header of Jetson developer kits: which GPIO line each pin is.

Pure data and lookups (no hardware access), so CI can test pin names. Each
GPIO pin answers to every name below, which is what lets one config work on
the Jetson factory and on gpiozero's MockFactory (a Raspberry Pi board):

* ``"BOARD11"`` and ``"J12:11"`` (physical pin, optionally with the header name),
* the kernel line name, e.g. ``"PR.04"`` (tegra186-gpio driver naming),
* ``("tegra234-gpio", 112)``: chip label and line offset,
* the Raspberry-Pi-compatible BCM names ``"GPIO17"``, ``"BCM17"``, ``17``, ``"17"``
  (Jetson.GPIO's BCM numbering follows the Pi header positions).

Prefer ``BOARDnn`` in configs. Line offsets, names and pin functions come from
NVIDIA's Jetson.GPIO pin tables for the developer-kit carriers; custom carriers
may differ. Only pins 15 and 32 are plain GPIOs on all four boards
(:func:`plain_gpio_everywhere`); the relay's default, BOARD32, is one of them.

Boards: Orin NX / Orin Nano and AGX Orin (JetPack 5 and 6; this project targets
JetPack 6), Xavier NX and AGX Xavier (JetPack 5 only: NVIDIA ships no JetPack 6
for Xavier, and JetPack 5's Python is 3.8 while this project needs 3.10+, so a
Xavier runs it only with a separately installed Python and without TensorRT).
Not listed, and refused by :func:`detect_board`: the Clara AGX Xavier (its own
header wiring, no table here), and the original Jetson Nano and TX2 (L4T 32,
kernel 4.9, which lacks the GPIO character-device uAPI v2 that libgpiod 2 needs).
"""
from __future__ import annotations

import os
import re
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

# "pin offset line function" per GPIO pin; an offset prefixed with "a" is on the
# always-on (aon) chip. The function is the pin's name in NVIDIA's carrier-board
# documentation (Jetson.GPIO's CVM column): "GPIOnn" is a plain GPIO; anything else
# (UART1_RTS, SPI*, I2S*, CAN*, MCLK05, PWM01) is a pin whose pad serves another
# controller unless the pinmux makes it a GPIO (README "On Jetson": pinmux).
_ORIN_NX = """
 7 144  PAC.06  GPIO09        11 112  PR.04   UART1_RTS
12 50   PH.07   I2S0_SCLK     13 122  PY.00   SPI1_SCK
15 85   PN.01   GPIO12        16 126  PY.04   SPI1_CS1
18 125  PY.03   SPI1_CS0      19 135  PZ.05   SPI0_MOSI
21 134  PZ.04   SPI0_MISO     22 123  PY.01   SPI1_MISO
23 133  PZ.03   SPI0_SCK      24 136  PZ.06   SPI0_CS0
26 137  PZ.07   SPI0_CS1      29 105  PQ.05   GPIO01
31 106  PQ.06   GPIO11        32 41   PG.06   GPIO07
33 43   PH.00   GPIO13        35 53   PI.02   I2S0_FS
36 113  PR.05   UART1_CTS     37 124  PY.02   SPI1_MOSI
38 52   PI.01   I2S0_SDIN     40 51   PI.00   I2S0_SDOUT
"""
_AGX_ORIN = """
 7 106  PQ.06   MCLK05        11 112  PR.04   UART1_RTS
12 50   PH.07   I2S2_CLK      13 108  PR.00   PWM01
15 85   PN.01   GPIO27        16 a9   PBB.01  GPIO08
18 43   PH.00   GPIO35        19 135  PZ.05   SPI1_MOSI
21 134  PZ.04   SPI1_MISO     22 96   PP.04   GPIO17
23 133  PZ.03   SPI1_CLK      24 136  PZ.06   SPI1_CS0_N
26 137  PZ.07   SPI1_CS1_N    29 a1   PAA.01  CAN0_DIN
31 a0   PAA.00  CAN0_DOUT     32 a8   PBB.00  GPIO09
33 a2   PAA.02  CAN1_DOUT     35 53   PI.02   I2S2_FS
36 113  PR.05   UART1_CTS     37 a3   PAA.03  CAN1_DIN
38 52   PI.01   I2S2_DIN      40 51   PI.00   I2S2_DOUT
"""
_XAVIER_NX = """
 7 118  PS.04   GPIO09        11 112  PR.04   UART1_RTS
12 127  PT.05   I2S0_SCLK     13 149  PY.00   SPI1_SCK
15 a16  PCC.04  GPIO12        16 153  PY.04   SPI1_CS1
18 152  PY.03   SPI1_CS0      19 162  PZ.05   SPI0_MOSI
21 161  PZ.04   SPI0_MISO     22 150  PY.01   SPI1_MISO
23 160  PZ.03   SPI0_SCK      24 163  PZ.06   SPI0_CS0
26 164  PZ.07   SPI0_CS1      29 105  PQ.05   GPIO01
31 106  PQ.06   GPIO11        32 108  PR.00   GPIO07
33 84   PN.01   GPIO13        35 130  PU.00   I2S0_FS
36 113  PR.05   UART1_CTS     37 151  PY.02   SPI1_MOSI
38 129  PT.07   I2S0_DIN      40 128  PT.06   I2S0_DOUT
"""
_AGX_XAVIER = """
 7 106  PQ.06   MCLK05        11 112  PR.04   UART1_RTS
12 51   PH.07   I2S2_CLK      13 108  PR.00   PWM01
15 84   PN.01   GPIO27        16 a8   PBB.00  GPIO8
18 44   PH.00   GPIO35        19 162  PZ.05   SPI1_MOSI
21 161  PZ.04   SPI1_MISO     22 101  PQ.01   GPIO17
23 160  PZ.03   SPI1_CLK      24 163  PZ.06   SPI1_CS0_N
26 164  PZ.07   SPI1_CS1_N    29 a3   PAA.03  CAN0_DIN
31 a2   PAA.02  CAN0_DOUT     32 a9   PBB.01  GPIO9
33 a0   PAA.00  CAN1_DOUT     35 54   PI.02   I2S2_FS
36 113  PR.05   UART1_CTS     37 a1   PAA.01  CAN1_DIN
38 53   PI.01   I2S2_DIN      40 52   PI.00   I2S2_DOUT
"""


@dataclass(frozen=True)
class Board:
    key: str
    model: str
    soc: str
    header: str
    table: str
    compatible: tuple  # substrings of /proc/device-tree/compatible that identify it
    jetpack: str  # the JetPack releases that run on it (Xavier stops at 5)

    @property
    def chip_labels(self) -> dict:
        return {"main": f"{self.soc}-gpio", "aon": f"{self.soc}-gpio-aon"}


BOARDS = MappingProxyType({
    "orin-nx": Board("orin-nx", "Jetson Orin NX / Orin Nano", "tegra234", "J12", _ORIN_NX, ("p3767-",), "5, 6"),
    "agx-orin": Board("agx-orin", "Jetson AGX Orin", "tegra234", "J30", _AGX_ORIN, ("p3701-",), "5, 6"),
    "xavier-nx": Board("xavier-nx", "Jetson Xavier NX", "tegra194", "J12", _XAVIER_NX, ("p3668-",), "5"),
    "agx-xavier": Board(
        "agx-xavier", "Jetson AGX Xavier", "tegra194", "J30", _AGX_XAVIER, ("p2888-", "p2972-", "jetson-xavier"), "5"
    ),
})

# Jetson.GPIO's model names (its JETSON_MODEL_NAME variable) and friendly aliases.
ALIASES = {
    "orin-nano": "orin-nx", "jetson_orin_nx": "orin-nx", "jetson_orin_nano": "orin-nx",
    "jetson_orin": "agx-orin", "jetson_nx": "xavier-nx", "jetson_xavier": "agx-xavier",
}
# Checked before BOARDS: a Clara AGX Xavier's compatible also names the AGX Xavier module (p2888-).
UNSUPPORTED = {
    "e3900-": "the Clara AGX Xavier carrier wires its header differently from the AGX Xavier dev kit "
              "(pins 13, 16, 29-37) and this factory has no table for it",
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
    for marker, why in UNSUPPORTED.items():
        if any(marker in entry for entry in entries):
            raise DoorError(f"this board is not supported by the jetson pin factory: {why}")
    for board in BOARDS.values():
        if any(marker in entry for entry in entries for marker in board.compatible):
            return board
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


def _rows(board: Board):
    fields = board.table.split()
    return zip(fields[0::4], fields[1::4], fields[2::4], fields[3::4])


@lru_cache(maxsize=None)
def lines(board: Board) -> dict:
    """{physical pin: Line} for the board's GPIO pins."""
    result = {}
    for pin, offset, name, _function in _rows(board):
        chip = "aon" if offset.startswith("a") else "main"
        result[int(pin)] = Line(board.chip_labels[chip], int(offset.lstrip("a")), name)
    return result


@lru_cache(maxsize=None)
def functions(board: Board) -> dict:
    """{physical pin: the pin's name on the carrier, e.g. "GPIO07" or "UART1_RTS"}."""
    return {int(pin): function for pin, _offset, _name, function in _rows(board)}


def plain_gpio(board: Board, number: int) -> bool:
    """True when header pin ``number`` is a plain GPIO on this board (no UART, SPI, I2S, CAN... role)."""
    return re.fullmatch(r"GPIO\d+", functions(board).get(number, "")) is not None


def plain_gpio_everywhere() -> list[int]:
    """Header pins that are plain GPIOs on every board listed here: the safe choice for the relay."""
    return [number for number in sorted(BCM) if all(plain_gpio(board, number) for board in BOARDS.values())]


def _pin_info(board: Board, number: int) -> PinInfo:
    row, col = (number + 1) // 2, 2 - number % 2
    line = lines(board).get(number)
    if line is None:
        function = FIXED[number]
        return PinInfo(number, function, frozenset({function, f"BOARD{number}", f"{board.header}:{number}"}),
                       "", row, col, frozenset())
    bcm = BCM[number]
    names = frozenset({
        f"BOARD{number}", f"{board.header}:{number}", line.name, (line.chip_label, line.offset),
        f"GPIO{bcm}", f"BCM{bcm}", bcm, str(bcm),
    })
    # interfaces is a frozenset, as in gpiozero's own pin data: gpiozero keys its
    # reservations by PinInfo, so every field must be hashable.
    return PinInfo(number, f"BOARD{number}", names, "", row, col, frozenset({"gpio"}))


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
