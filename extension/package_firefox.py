"""Build the Firefox variant of the extension from the same sources.

    python extension/package_firefox.py      ->  extension/dist/firefox/ (+ tasktimer-firefox.zip)

Only the manifest differs, and it is derived from manifest.json here so the two never
drift: Firefox runs the background as an event page (`background.scripts`, still an ES
module) instead of a service worker, and wants `browser_specific_settings`. Load the folder
from about:debugging → "Load Temporary Add-on…". Firefox treats MV3 host permissions as
optional: grant them in about:addons → Tasktimer → Permissions on first use.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
GECKO_ID = "tasktimer@tasktimer.dev"
MIN_FIREFOX = "128.0"


def firefox_manifest(chromium: dict[str, object]) -> dict[str, object]:
    manifest = dict(chromium)
    background = dict(manifest.pop("background"))  # type: ignore[call-overload]
    manifest["background"] = {"scripts": [background["service_worker"]], "type": background["type"]}
    manifest.pop("minimum_chrome_version", None)
    manifest["browser_specific_settings"] = {
        "gecko": {"id": GECKO_ID, "strict_min_version": MIN_FIREFOX}
    }
    return manifest


def main() -> None:
    out = HERE / "dist" / "firefox"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(HERE / "src", out / "src")
    chromium = json.loads((HERE / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(firefox_manifest(chromium), indent=2) + "\n")
    archive = shutil.make_archive(str(HERE / "dist" / "tasktimer-firefox"), "zip", out)
    print(f"built {out} and {archive}")


if __name__ == "__main__":
    main()
