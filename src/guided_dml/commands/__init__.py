"""The practitioner's commands on a trained model: ``gdml embed`` / ``search``
(:mod:`.inference`), ``gdml index`` and galleries (:mod:`.gallery`), ``gdml plot``
(:mod:`.maps`, with the interactive page of :mod:`.interactive`) and ``gdml export``
(:mod:`.export`); :mod:`.outputs` writes their files.

The research runner (configs, runs, the benchmark grid and its report) is
:mod:`guided_dml.experiments`; these commands only read the model files it (or
:class:`~guided_dml.GuidedEmbedder`) writes.
"""
