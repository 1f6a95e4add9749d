"""Settings modules of the OC Pizza example.

- ``ocpizza.settings.production``: deployed servers; everything comes from the
  environment (see README.md).
- ``ocpizza.settings.dev``: local work, SQLite file, DEBUG on.
- ``ocpizza.settings.test``: the test suite (SQLite in memory).

There is no default: ``DJANGO_SETTINGS_MODULE`` must always be set.
"""
