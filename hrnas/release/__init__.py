"""Release tooling: what makes and publishes the zoo (not needed to use or search models).

- :mod:`hrnas.release.recipes`: how each zoo model is made (``hrnas zoo-build``), and :func:`run_recipe`, the same
  training for other architectures (benchmarks compare against it).
- :mod:`hrnas.release.cards`: the model cards written with the zoo's weights.
- :mod:`hrnas.release.zoo_table`: the model-zoo table of ``docs/zoo.md``, generated from the catalog.
"""
