"""Fleet simulator: the real Nova scheduler (filters, weighers) over a
described fleet and request trace, cyborg-nova's pipeline against Nova's
own PCI passthrough (``cyborg-nova simulate``)."""
