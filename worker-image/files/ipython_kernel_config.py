# System-wide IPython kernel config for the Tether sandbox (read-only root).
# IPython reads /etc/ipython/ after $IPYTHONDIR/profile_default, so a user's
# profile in the writable /tmp could still override these.
c = get_config()  # noqa: F821

# No history sqlite: it costs time on start and on every execute, and the
# host keeps its own record of what ran.
c.HistoryManager.enabled = False

# Inline figures as PNG only (one image/png per figure in display_data).
c.InlineBackend.figure_formats = {"png"}

# Jedi completion is slow to warm up; the service never asks for completions.
c.Completer.use_jedi = False

# Optional warm-up: TETHER_PRELOAD="numpy,pandas" imports those modules into
# sys.modules while the kernel starts (not into the user namespace), so the
# first execute of a pooled sandbox does not pay for them. Off by default:
# it adds start-up time and memory to every idle container.
# (matplotlib.pyplot must not be listed: it has to be imported after the shell
# exists for the inline backend to hook in. Plain "matplotlib" is fine.)
import importlib
import os

for _name in filter(None, os.environ.get("TETHER_PRELOAD", "").replace(" ", "").split(",")):
    try:
        importlib.import_module(_name)
    except Exception as _e:  # a bad name must not stop the kernel
        print("tether: preload of %r failed: %s" % (_name, _e))

# Matplotlib logs "findfont: ... not found" once per text element drawn: code
# that asks for a font the image lacks (e.g. the common
# rcParams["font.sans-serif"] = ["SimHei"]) would get dozens of identical
# stderr lines per figure. Keep the first of each; the text still renders
# through the CJK fallback family.
import logging


class _OncePerMessage(logging.Filter):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def filter(self, record):
        key = record.getMessage()
        if key in self.seen:
            return False
        if len(self.seen) < 1000:
            self.seen.add(key)
        return True


logging.getLogger("matplotlib.font_manager").addFilter(_OncePerMessage())
