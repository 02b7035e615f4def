"""Seed matplotlib's font cache into a fresh MPLCONFIGDIR.

The sandbox root is read-only and MPLCONFIGDIR points into an empty tmpfs
(/tmp/mpl), so without this every new sandbox would rebuild the font list on
its first plot (seconds with the CJK fonts). The image bakes the cache at
build time into /usr/local/share/tether/mpl-cache; a .pth hook runs this at
interpreter start-up and copies it over when it is missing. Never raises.
"""


def seed():
    import os

    dst = os.environ.get("MPLCONFIGDIR")
    src = "/usr/local/share/tether/mpl-cache"
    if not dst or dst == src:
        return
    try:
        names = [n for n in os.listdir(src) if n.startswith("fontlist-")]
        for name in names:
            target = os.path.join(dst, name)
            if os.path.exists(target):
                continue
            os.makedirs(dst, exist_ok=True)
            tmp = "%s.%d.tmp" % (target, os.getpid())
            with open(os.path.join(src, name), "rb") as r, open(tmp, "wb") as w:
                w.write(r.read())
            os.replace(tmp, target)
    except Exception:
        pass


seed()
del seed
