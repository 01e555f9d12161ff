"""The numerical experiments (simulations, not verdicts): checks/ has three rooms, the verification
engine (registry, claims, runner, audit, reports), these experiments, and the CLI (checks/commands).

- :mod:`checks.experiments.simulate`: on-policy vs offline DPO (``prefcheck simulate``; claims S3, S4).
- :mod:`checks.experiments.distill_sim`: reward distillation vs DPO (``prefcheck simulate --method distill``).
- :mod:`checks.experiments.design_study`: the two-round hybrid sampler study (``prefcheck design --study``).
- :mod:`checks.experiments.simfig`: how their figures are drawn and saved.
"""
