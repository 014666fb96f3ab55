"""`python recorded_run.py ARGS...` = `edge-verify ARGS...` with the relay on a RecordingPin.

gpiozero's MockFactory, but its pins also write their history to $EDGE_TEST_PIN_LOG,
so a test can read the pin states of a daemon it has killed with SIGKILL."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemonkit import RecordingPin  # noqa: E402
from gpiozero import Device  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from edge.cli import main  # noqa: E402

if __name__ == "__main__":
    Device.pin_factory = MockFactory(pin_class=RecordingPin)
    sys.exit(main(sys.argv[1:]))
