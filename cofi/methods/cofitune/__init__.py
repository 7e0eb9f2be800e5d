"""CoFiTune's family: the coarse region, the fine soft mask and the unit importance it reads."""
