"""Write the sandbox's matplotlib settings (run once at image build, as root).

Debian's matplotlib reads two files:
  * mpl-data/matplotlibrc: every line commented; matplotlib derives its
    *defaults* (rcParamsDefault) from it by dropping the leading "#". We edit
    those commented lines in place, so plt.rcdefaults() and
    plt.style.use("default") keep the CJK font. (Appending uncommented keys
    there instead makes every import log "Duplicate key" warnings.)
  * /etc/matplotlibrc: the system-wide rc (matplotlib_fname() when no
    MATPLOTLIBRC/cwd/user rc exists). Debian sets "backend: TkAgg" there; Tk is
    not installed, so it becomes Agg (the kernel overrides it with MPLBACKEND),
    and the same settings are stated there explicitly.
"""

import os
import re

import matplotlib

CJK = "Noto Sans CJK JP"  # first face of NotoSansCJK-Regular.ttc, all CJK glyphs
SETTINGS = {
    "font.family": "sans-serif",
    "font.sans-serif": CJK + ", Noto Sans CJK SC, DejaVu Sans, Bitstream Vera Sans, sans-serif",
    "font.serif": "DejaVu Serif, " + CJK + ", serif",
    "font.monospace": "DejaVu Sans Mono, " + CJK + ", monospace",
    "axes.unicode_minus": "False",
}

data_rc = os.path.realpath(os.path.join(matplotlib.get_data_path(), "matplotlibrc"))
text = open(data_rc, encoding="utf-8").read()
for key, value in SETTINGS.items():
    pattern = re.compile(r"^#%s\s*:[^\n]*" % re.escape(key), re.M)
    text, n = pattern.subn(lambda m: "#%s: %s  # tether" % (key, value), text)
    assert n == 1, "%s: expected one commented %r line, found %d" % (data_rc, key, n)
open(data_rc, "w", encoding="utf-8").write(text)

system_rc = "/etc/matplotlibrc"
assert os.path.realpath(matplotlib.matplotlib_fname()) == system_rc, matplotlib.matplotlib_fname()
text = open(system_rc, encoding="utf-8").read()
text = re.sub(r"^backend\s*:.*$", "backend: Agg", text, flags=re.M)
text += "\n## ---- Tether sandbox (worker-image/files/setup_mpl_rc.py) ----\n"
text += "".join("%s: %s\n" % kv for kv in SETTINGS.items())
open(system_rc, "w", encoding="utf-8").write(text)
print("matplotlib rc: defaults in %s, settings in %s" % (data_rc, system_rc))
