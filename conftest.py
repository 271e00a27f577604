# The conformance plugin: --inventory, --lab-prefix, --run-dir, and the fixtures
# target / edge / cell that tests/conformance uses.
pytest_plugins = ["aovpn_lab.pytest_plugin"]
