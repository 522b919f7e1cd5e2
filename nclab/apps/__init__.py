"""Interactive apps, one module per paper (``nclab.apps.seli`` … ``nclab.apps.mcl``) on the generic
:class:`nclab.apps.base.App`: a *pure* state function (control values → arrays to draw, testable without a
kernel) and an apply function writing that state into figures inside ``batch_update``."""
