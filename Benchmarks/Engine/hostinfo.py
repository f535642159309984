"""What the engine benchmarks (compare.py, pipeline.py) print about the machine they ran on."""


def cpu_name(default="unknown"):
    """The CPU's model name from /proc/cpuinfo, or `default` where it gives none."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return default
