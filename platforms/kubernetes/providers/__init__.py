"""Cluster providers: where a Kubernetes platform runs (``--target kind`` and ``--target
kubeconfig``), behind one shape (``base.Cluster``) and one base class (``base.ClusterProvider``).
Each is registered in ``zerodrop.platforms.registry``."""
