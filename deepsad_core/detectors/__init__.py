"""The detectors: Deep SAD (the paper's method) and the ensemble around it, behind one contract
(:mod:`deepsad_core.detectors.contract`). Nothing outside this package touches a detector's members."""
