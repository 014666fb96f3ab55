"""A kiosk's provisioning bundle (made by `edge-verify hub add-device NAME`): read and checked.

One JSON file, mode 0600, holding everything the kiosk needs to join its site:
broker address, the site CA, its client certificate and key, its broker user and
password, its wrap key and the site key wrapped for it, and the site's offline
policy at the time. Anyone holding it can act as that kiosk: keep it like the
gallery key, and revoke the device at the hub if it leaks.
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edge.exc import ConfigError
from edge.fleet import names
from edge.fleet.sitekey import SiteCipher, SiteKeyError, unb64, unwrap

FORMAT = "edge-verify-device-bundle/1"
FIELDS = ("site", "device", "broker", "ca", "cert", "key", "username", "password", "wrap_private",
          "wrapped_site_key", "key_check", "policy")


@dataclass(frozen=True)
class Bundle:
    path: Path
    data: dict

    @property
    def site(self) -> str:
        return self.data["site"]

    @property
    def device(self) -> str:
        return self.data["device"]

    @property
    def broker(self) -> tuple[str, int]:
        return self.data["broker"]["host"], int(self.data["broker"]["port"])

    def cipher(self) -> SiteCipher:
        """The site's template cipher, unwrapped with this device's key and checked."""
        try:
            key = unwrap(unb64(self.data["wrapped_site_key"]), unb64(self.data["wrap_private"]), self.site, self.device)
        except (SiteKeyError, ValueError) as error:
            raise ConfigError(f"bundle {self.path}: {error}") from None
        cipher = SiteCipher(self.site, key)
        if cipher.key_check() != self.data["key_check"]:
            raise ConfigError(f"bundle {self.path}: the site key does not match its check value (damaged bundle)")
        return cipher


def read_bundle(path: str | os.PathLike) -> Bundle:
    path = Path(path)
    try:
        info = path.stat()
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no provisioning bundle at {path}: make one at the hub with "
                          "`edge-verify hub add-device NAME --out FILE` and copy it here (mode 0600)") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the provisioning bundle {path}: {error}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"provisioning bundle {path} is open to group or others (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}` (it holds the kiosk's secrets)")
    if not isinstance(data, dict) or data.get("format") != FORMAT or any(field not in data for field in FIELDS):
        raise ConfigError(f"{path} is not an edge-verify provisioning bundle (format {FORMAT})")
    names.check_name("site", data["site"])
    names.check_name("device", data["device"])
    return Bundle(path, data)
