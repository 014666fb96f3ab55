"""The Jetson pin factory, as far as it can be checked without a Jetson: names, boards, registration, errors."""
from __future__ import annotations

import re
import sys
import types
from importlib.metadata import entry_points

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from edge.door import jetson
from edge.daemon.config import BY_NAME
from edge.door.jetson_pins import (
    BCM,
    BOARDS,
    Line,
    board_for,
    board_info,
    detect_board,
    functions,
    line_for,
    lines,
    plain_gpio,
    plain_gpio_everywhere,
)
from edge.exc import DoorError

ORIN_NANO_DEVKIT = b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0"


@pytest.mark.parametrize("name", ["BOARD11", "J12:11", "PR.04", ("tegra234-gpio", 112), "GPIO17", "BCM17", 17, "17"])
def test_every_alias_of_header_pin_11_on_an_orin_nano(name):
    assert line_for(board_for("orin-nano"), name) == Line("tegra234-gpio", 112, "PR.04")


@pytest.mark.parametrize(
    "board,name,expected",
    [
        ("agx-orin", "BOARD16", Line("tegra234-gpio-aon", 9, "PBB.01")),
        ("agx-orin", "J30:7", Line("tegra234-gpio", 106, "PQ.06")),
        ("xavier-nx", "BOARD15", Line("tegra194-gpio-aon", 16, "PCC.04")),
        ("agx-xavier", "BOARD33", Line("tegra194-gpio-aon", 0, "PAA.00")),
        ("orin-nx", "BOARD7", Line("tegra234-gpio", 144, "PAC.06")),
    ],
)
def test_pins_on_each_board(board, name, expected):
    assert line_for(board_for(board), name) == expected


@pytest.mark.parametrize("key", sorted(BOARDS))
def test_board_tables_are_complete_and_consistent(key):
    board = BOARDS[key]
    table = lines(board)
    assert sorted(table) == sorted(BCM)  # the 22 GPIO pins of the 40-pin header
    assert len({(line.chip_label, line.offset) for line in table.values()}) == len(table)
    assert all(re.fullmatch(r"P[A-Z]{1,2}\.0[0-7]", line.name) for line in table.values())
    assert {line.chip_label for line in table.values()} <= set(board.chip_labels.values())


def test_bcm_names_match_gpiozeros_own_raspberry_pi_header():
    """A config written against MockFactory (a Pi) must name the same physical pins on a Jetson."""
    pi = MockFactory().board_info
    for number, bcm in BCM.items():
        (_header, pin), = pi.find_pin(f"BOARD{number}")
        assert pin.name == f"GPIO{bcm}"


def test_non_gpio_and_unknown_pins_are_refused():
    board = board_for("orin-nx")
    with pytest.raises(DoorError, match="3V3"):
        line_for(board, "BOARD1")
    with pytest.raises(DoorError, match="not a GPIO"):
        line_for(board, "BOARD6")
    with pytest.raises(DoorError, match="not a pin"):
        line_for(board, "BOARD41")
    with pytest.raises(DoorError, match="unknown Jetson model"):
        board_for("raspberry-pi")


def test_board_detection_from_the_device_tree(monkeypatch):
    monkeypatch.delenv("JETSON_MODEL_NAME", raising=False)
    assert detect_board(ORIN_NANO_DEVKIT).key == "orin-nx"
    assert detect_board(b"nvidia,p3737-0000+p3701-0005\0nvidia,tegra234\0").key == "agx-orin"
    assert detect_board(b"nvidia,p3509-0000+p3668-0001\0nvidia,tegra194\0").key == "xavier-nx"
    with pytest.raises(DoorError, match="kernel 4.9"):
        detect_board(b"nvidia,p3450-0000\0nvidia,jetson-nano\0nvidia,tegra210\0")
    with pytest.raises(DoorError, match="not a supported Jetson"):
        detect_board(b"raspberrypi,4-model-b\0brcm,bcm2711\0")
    monkeypatch.setenv("JETSON_MODEL_NAME", "JETSON_ORIN")  # Jetson.GPIO's spelling
    assert detect_board(ORIN_NANO_DEVKIT).key == "agx-orin"


def test_clara_agx_xavier_is_refused_not_taken_for_an_agx_xavier(monkeypatch):
    """Its compatible names the AGX Xavier module too, but its header is wired differently."""
    monkeypatch.delenv("JETSON_MODEL_NAME", raising=False)
    with pytest.raises(DoorError, match="Clara AGX Xavier"):
        detect_board(b"nvidia,e3900-0000+p2888-0004\0nvidia,tegra194\0")
    with pytest.raises(DoorError, match="unknown Jetson model"):
        board_for("clara_agx_xavier")
    assert detect_board(b"nvidia,p2972-0000\0nvidia,tegra194\0").key == "agx-xavier"


def test_xavier_boards_say_they_are_jetpack_5_only():
    assert {key: board.jetpack for key, board in BOARDS.items()} == {
        "orin-nx": "5, 6", "agx-orin": "5, 6", "xavier-nx": "5", "agx-xavier": "5"}


@pytest.mark.parametrize("key", sorted(BOARDS))
def test_every_gpio_pin_has_its_carrier_function(key):
    board = BOARDS[key]
    assert sorted(functions(board)) == sorted(lines(board))
    assert functions(board)[11] == "UART1_RTS"  # the old default relay pin: a UART pin on every board
    assert not plain_gpio(board, 11)


def test_the_default_relay_pin_is_a_plain_gpio_on_every_board():
    """Not a UART/SPI/CAN pin: such a pad goes back to its controller when the line is released."""
    assert plain_gpio_everywhere() == [15, 32]
    default = BY_NAME["door.pin"].default
    number = int(default.removeprefix("BOARD"))
    assert all(plain_gpio(board, number) for board in BOARDS.values()), default


def test_board_info_is_a_gpiozero_header():
    info = board_info(board_for("orin-nx"))
    header = info.headers["J12"]
    assert len(header.pins) == 40 and header.pins[11].name == "BOARD11"
    assert "gpio" in header.pins[11].interfaces and "gpio" not in header.pins[6].interfaces
    assert "BOARD11" in f"{info:mono headers}"


def test_missing_gpiod_is_a_door_error_saying_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)  # makes `import gpiod` fail, installed or not
    with pytest.raises(DoorError, match=r"pip install 'gpiod>=2'"):
        jetson.JetsonFactory(model="orin-nx")


def test_libgpiod_1_bindings_are_recognised_and_refused(monkeypatch):
    old_api = types.ModuleType("gpiod")  # what apt's python3-libgpiod offers: Chip, but no request_lines
    old_api.Chip = object
    monkeypatch.setitem(sys.modules, "gpiod", old_api)
    with pytest.raises(DoorError, match="1.x API"):
        jetson.import_gpiod()


def _jetson_entry_point():
    return [ep for ep in entry_points(group="gpiozero_pin_factories") if ep.name == "jetson"]


@pytest.mark.skipif(not _jetson_entry_point(), reason="the 'jetson' gpiozero_pin_factories entry point is not "
                    "installed yet (pyproject [project.entry-points.gpiozero_pin_factories], then pip install -e .)")
def test_gpiozero_finds_the_factory_by_name(monkeypatch):
    (entry,) = _jetson_entry_point()
    assert entry.value == "edge.door.jetson:JetsonFactory" and entry.load() is jetson.JetsonFactory
    monkeypatch.setitem(sys.modules, "gpiod", None)
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "jetson")
    monkeypatch.setenv("JETSON_MODEL_NAME", "orin-nx")
    # gpiozero's own loader reaches our factory, whose first act is the clear gpiod error.
    with pytest.raises(DoorError, match="gpiod"):
        Device._default_pin_factory()
