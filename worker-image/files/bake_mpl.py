"""Bake (or, with --check, verify) matplotlib's font cache for the sandbox image.

bake_mpl.py DIR   build the font list into DIR (used as MPLCONFIGDIR), make the
                  CJK face the fallback family, render a Chinese test figure.
bake_mpl.py --check
                  run with MPLCONFIGDIR pointing at an empty dir: the
                  tether_mplcache .pth hook must have seeded it, so matplotlib
                  loads the baked list instead of rebuilding it; Chinese text
                  must render with no missing-glyph warning.
"""

import logging
import os
import sys
import tempfile
import warnings

CJK = "Noto Sans CJK JP"  # first face of NotoSansCJK-Regular.ttc

check = sys.argv[1:] == ["--check"]
if not check:
    os.makedirs(sys.argv[1], exist_ok=True)
    os.environ["MPLCONFIGDIR"] = sys.argv[1]
os.environ["MPLBACKEND"] = "Agg"

messages = []


class Keep(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())


logging.getLogger("matplotlib").addHandler(Keep())
logging.getLogger("matplotlib").setLevel(logging.INFO)

import matplotlib  # noqa: E402
from matplotlib import font_manager as fm  # noqa: E402

cache = os.path.join(
    matplotlib.get_cachedir(), "fontlist-v%s.json" % fm.FontManager.__version__
)
names = {f.name for f in fm.fontManager.ttflist}
assert CJK in names, "CJK font not found by matplotlib: %s" % sorted(names)

if check:
    rebuilt = [m for m in messages if "generated new fontManager" in m]
    assert not rebuilt, "font cache was rebuilt instead of seeded: %s" % rebuilt
    assert fm.fontManager.defaultFamily["ttf"] == CJK, fm.fontManager.defaultFamily
else:
    # Code written for Windows often sets font.sans-serif = ["SimHei"]; with no
    # such font matplotlib falls back to defaultFamily, which is stored in this
    # cache. Make that fallback the CJK face so such code still renders Chinese.
    fm.fontManager.defaultFamily["ttf"] = CJK
    fm.json_dump(fm.fontManager, cache)

import matplotlib.pyplot as plt  # noqa: E402

for params in (matplotlib.rcParams, matplotlib.rcParamsDefault):
    assert params["axes.unicode_minus"] is False
    assert params["font.sans-serif"][0] == CJK, params["font.sans-serif"]
assert not [m for m in messages if "Duplicate key" in m or "Bad key" in m], messages
used = fm.findfont(fm.FontProperties(family=["sans-serif"]))
assert "NotoSansCJK" in used, used

out = tempfile.mkdtemp()
with warnings.catch_warnings():
    warnings.simplefilter("error")  # "Glyph ... missing from current font" -> error
    fig, ax = plt.subplots()
    ax.plot([-2, 0, 3])
    ax.set_title("销售额（万元）— 月度趋势")
    ax.set_xlabel("月份 -1")
    fig.savefig(os.path.join(out, "a.png"), dpi=40)
    plt.rcParams["font.sans-serif"] = ["SimHei"]  # missing on purpose
    fig, ax = plt.subplots()
    ax.set_title("中文标题")
    fig.savefig(os.path.join(out, "b.png"), dpi=40)
for name in os.listdir(out):
    os.unlink(os.path.join(out, name))
os.rmdir(out)
print("matplotlib %s: cache %s ok (%s)" % (matplotlib.__version__, cache, used))
