"""Release tooling: what makes and publishes the zoo (not needed to use or search models).

- :mod:`hrnas.release.zoo_table`: the model-zoo table of ``docs/zoo.md``, generated from the catalog.
"""
