"""Source text the memory probes of bench/ run in fresh processes (`python -c`): reading this
process's resident memory and resetting its peak, from /proc (Linux)."""

RSS_HELPERS = r"""
def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))
def reset_peak():
    # Writing 5 to clear_refs resets VmHWM to the current VmRSS.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
"""
