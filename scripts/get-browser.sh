#!/usr/bin/env bash
# The browser test drives Debian's headless Chromium through its chromedriver (no browser is
# downloaded at test time). Installs both packages when root and absent.
set -euo pipefail
have() { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }
if have; then echo "browser: $(chromium --version 2>/dev/null | head -1), chromedriver present"; exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "browser: installing Debian packages chromium and chromium-driver"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  have && { echo "browser: installed"; exit 0; }
fi
echo "browser: chromium and chromedriver are missing and not installable here (need root and" >&2
echo "         apt-get); install Debian's chromium and chromium-driver to run the browser test." >&2
exit 1
